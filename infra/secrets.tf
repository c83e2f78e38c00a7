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
  # Exactly what each identity's functions mount (functions.tf): a feature's secret only when the
  # install uses the feature.
  secret_grants = merge([
    for identity, spec in local.identities : {
      for secret_id in spec.secrets : "${identity}/${secret_id}" => {
        identity = identity
        secret   = secret_id
      } if lookup(local.optional_secrets, secret_id, true)
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
