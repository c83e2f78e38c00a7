# One Cloud Functions 2nd gen function per entry point, built from its folder's staged source
# (functions/<folder>/main.py + shared/ + the folder's pinned requirements.txt: devstack/stage.py).

resource "google_storage_bucket" "sources" {
  project                     = var.project
  name                        = "${var.project}-bridge-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Old staged archives are worth nothing once a newer one is deployed.
  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }

  #checkov:skip=CKV_GCP_62:Access logs of build archives would record only Cloud Build's own reads; the bucket holds no data.
  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  for_each = local.sources
  # The archive's hash in its name: a changed source is a new object, which redeploys.
  name   = "${each.value}-${filemd5("${var.staged_dir}/${each.value}.zip")}.zip"
  bucket = google_storage_bucket.sources.name
  source = "${var.staged_dir}/${each.value}.zip"
}

resource "google_cloudfunctions2_function" "fn" {
  for_each    = local.functions
  project     = var.project
  location    = var.region
  name        = replace(each.key, "_", "-")
  description = "ERPNext Bridge: ${each.key} (functions/${each.value.source}/main.py)"

  build_config {
    runtime     = "python311"
    entry_point = each.key
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[each.value.source].name
      }
    }
  }

  service_config {
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    max_instance_request_concurrency = each.value.concurrency
    timeout_seconds                  = each.value.timeout
    max_instance_count               = each.value.max_instances
    min_instance_count               = each.key == "receive_erp_webhook" ? var.min_instances : 0
    service_account_email            = google_service_account.identity[each.value.identity].email
    all_traffic_on_latest_revision   = true
    # Pub/Sub push and Cloud Scheduler of the same project count as internal traffic, so their
    # targets refuse the internet at the network too (and need an OIDC token of an identity with
    # run.invoker, iam.tf). Public webhooks (ERPNext, Telegram, Twilio) and private functions
    # called by people (admin_members with an identity token) must be reachable from outside.
    ingress_settings = contains(["pubsub", "scheduler"], each.value.access) ? "ALLOW_INTERNAL_ONLY" : "ALLOW_ALL"
    #checkov:skip=CKV_GCP_124:Only receive_erp_webhook, telegram_webhook, whatsapp_webhook (each verifies an HMAC signature or secret token) and download_attachment (the caller's ERPNext token) allow all ingress; Pub/Sub and Scheduler targets are ALLOW_INTERNAL_ONLY, which tests/infra asserts.

    environment_variables = merge(
      { GCP_PROJECT = var.project },
      local.folder_env[each.value.source],
      each.value.access == "scheduler" || each.value.access == "private" ? {
        # shared/platform/auth.py: the scheduled jobs verify the caller's OIDC token themselves too.
        ADMIN_AUDIENCE       = local.function_url[each.key]
        ADMIN_ALLOWED_EMAILS = join(",", concat([google_service_account.scheduler.email], var.admin_emails))
      } : {},
      lookup(var.function_env, each.value.source, {}),
      # functions-framework serves THREADS threads (four per CPU without it): exactly the requests
      # Cloud Run admits to one instance, so every admitted request has a thread and a slow one
      # holds only its own (Google's advice for Python). Last, so function_env cannot undo it.
      { THREADS = tostring(each.value.concurrency) },
    )

    dynamic "secret_environment_variables" {
      for_each = [
        for secret_id in local.identities[each.value.identity].secrets : secret_id
        if lookup(local.optional_secrets, secret_id, true)
      ]
      content {
        key        = local.secrets[secret_environment_variables.value]
        project_id = var.project
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = var.secret_version
      }
    }
  }

  depends_on = [
    google_project_service.apis,
    google_secret_manager_secret_iam_member.accessor,
  ]
}
