# Cloud Scheduler jobs: each calls its HTTP function with an OIDC token of the scheduler's own
# service account, which may invoke only these functions (iam.tf).

resource "google_cloud_scheduler_job" "job" {
  for_each  = local.scheduled_jobs
  project   = var.project
  region    = var.region
  name      = each.key
  schedule  = each.value.schedule
  time_zone = var.time_zone
  # Scheduler waits at most 30 min; the function's own timeout is the real bound.
  attempt_deadline = "${min(1800, local.functions[each.value.entry_point].timeout)}s"

  retry_config {
    retry_count          = 1
    min_backoff_duration = "30s"
  }

  http_target {
    http_method = "POST"
    uri         = local.function_url[each.value.entry_point]
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.function_url[each.value.entry_point]
    }
  }

  depends_on = [google_project_service.apis, google_cloudfunctions2_function.fn]
}
