# Secret Manager secrets, without values (docs/OPERATIONS.md adds versions with gcloud), each
# readable only by the identities whose functions mount it.

resource "google_secret_manager_secret" "secret" {
  for_each  = local.secrets
  project   = var.project
  secret_id = each.key

  replication {
    auto {}
  }

  labels     = { app = "erpnext-bridge" }
  depends_on = [google_project_service.apis]
}

locals {
  secret_grants = merge([
    for identity, spec in local.identities : {
      for secret_id in spec.secrets : "${identity}/${secret_id}" => {
        identity = identity
        secret   = secret_id
      }
    }
  ]...)
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each  = local.secret_grants
  project   = var.project
  secret_id = google_secret_manager_secret.secret[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.identity[each.value.identity].email}"
}
