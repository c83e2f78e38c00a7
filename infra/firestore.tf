# Firestore (native mode) and the TTL policies that delete claim-like records after `expire_at`.
# The emulator has no TTL; the code writes `expire_at` anyway and production honours it here.

resource "google_firestore_database" "default" {
  project                           = var.project
  name                              = "(default)"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"
  depends_on                        = [google_project_service.apis]
}

resource "google_firestore_field" "ttl" {
  for_each   = toset(local.ttl_collections)
  project    = var.project
  database   = google_firestore_database.default.name
  collection = each.value
  field      = local.ttl_field

  ttl_config {}

  # No single-field indexes on the TTL timestamp: nothing queries it, and an index on an
  # ever-increasing value is a write hotspot.
  index_config {}
}

resource "google_firestore_index" "query" {
  for_each   = local.composite_indexes
  project    = var.project
  database   = google_firestore_database.default.name
  collection = each.value.collection

  fields {
    field_path = each.value.equal
    order      = "ASCENDING"
  }

  fields {
    field_path = each.value.newest_first
    order      = "DESCENDING"
  }
}
