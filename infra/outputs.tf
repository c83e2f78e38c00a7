# What the operator needs next (docs/OPERATIONS.md).

output "erp_webhook_url" {
  description = "ERPNext's Webhook request_url (add ?event=<docevent>)"
  value       = google_cloudfunctions2_function.fn["receive_erp_webhook"].service_config[0].uri
}

output "telegram_webhook_url" {
  description = "For `bridge telegram-webhook URL`"
  value       = google_cloudfunctions2_function.fn["telegram_webhook"].service_config[0].uri
}

output "whatsapp_webhook_url" {
  description = "Twilio's 'A message comes in' URL: exactly this, it is what the signature covers"
  value       = local.function_url["whatsapp_webhook"]
}

output "function_urls" {
  description = "Every function's URL"
  value       = local.function_url
}

output "sheets_service_account" {
  description = "Share the Invoice Tracker spreadsheet with this address (Editor)"
  value       = google_service_account.identity["sheets-sync"].email
}

output "drive_service_account" {
  description = "Add this address to the shared drive (Content manager) when drive_auth = shared_drive"
  value       = google_service_account.identity["drive-upload"].email
}

output "scheduler_service_account" {
  description = "The identity Cloud Scheduler calls the jobs as (ADMIN_ALLOWED_EMAILS)"
  value       = google_service_account.scheduler.email
}

output "admin_api_url" {
  description = "The admin API (error log, replay); call it with an identity token of an admin_emails identity"
  value       = local.function_url["admin_api"]
}
