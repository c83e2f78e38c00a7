# What an install chooses. Secrets are not variables: their values go into Secret Manager by hand
# (docs/OPERATIONS.md), so they never sit in a state file or a tfvars file.

variable "project" {
  type        = string
  description = "Google Cloud project id"
}

variable "region" {
  type        = string
  default     = "europe-west1"
  description = "Region of the functions, Scheduler jobs and source bucket"
}

variable "firestore_location" {
  type        = string
  default     = "eur3"
  description = "Firestore location (cannot change after creation): a multi-region (eur3, nam5) or a region"
}

variable "staged_dir" {
  type        = string
  default     = "../build"
  description = "Where `python -m devstack.stage <function> <dir> --zip <dir>.zip` left <function>.zip for each function"
}

variable "max_delivery_attempts" {
  type        = number
  default     = 10
  description = "Push deliveries of one message before it is dead-lettered into an error record (5-100)"
  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "Pub/Sub allows 5 to 100 delivery attempts."
  }
}

variable "time_zone" {
  type        = string
  default     = "Etc/UTC"
  description = "Time zone of the Scheduler jobs' schedules (the daily digest's hour)"
}

variable "erp_site" {
  type        = string
  description = "The ERPNext site name (ERP_SITE): part of every event id"
}

variable "erpnext_url" {
  type        = string
  description = "ERPNext's address as the functions reach it (ERPNEXT_URL)"
}

variable "erpnext_public_url" {
  type        = string
  default     = ""
  description = "ERPNext's address in links people open, when it differs (ERPNEXT_PUBLIC_URL)"
}

variable "spreadsheet_id" {
  type        = string
  description = "The Invoice Tracker spreadsheet id (SHEETS_SPREADSHEET_ID), shared with the sheets_sync service account"
}

variable "drive_auth" {
  type        = string
  default     = "shared_drive"
  description = "DRIVE_AUTH: shared_drive, delegation or oauth_user (only oauth_user mounts the drive-oauth-* secrets)"
  validation {
    condition     = contains(["shared_drive", "delegation", "oauth_user"], var.drive_auth)
    error_message = "drive_auth must be shared_drive, delegation or oauth_user."
  }
}

variable "telegram_bot_username" {
  type        = string
  description = "The bot's username without @ (TELEGRAM_BOT_USERNAME)"
}

variable "whatsapp_enabled" {
  type        = bool
  default     = false
  description = "Mount twilio-auth-token into the notifier (set the twilio_* values in function_env too)"
}

variable "function_env" {
  type        = map(map(string))
  default     = {}
  description = <<-EOT
    More plain settings per function folder (erp_webhook, sheets_sync, drive_upload, notifier),
    named as in the README's settings table, e.g.
    { notifier = { ALERT_CHATS_JSON = "{\"admins\": -100123}", TWILIO_ACCOUNT_SID = "AC..." },
      drive_upload = { DRIVE_SHARED_DRIVE_ID = "0A..." } }
  EOT
}

variable "secret_version" {
  type        = string
  default     = "latest"
  description = "Secret version the functions read at instance start; pin a number in production"
}

variable "admin_members" {
  type        = list(string)
  default     = []
  description = "Who may invoke the private (people-facing, not public) functions, e.g. [\"group:ops@example.com\"]; scheduled jobs are run by hand with `gcloud scheduler jobs run`"
}

variable "admin_emails" {
  type        = list(string)
  default     = []
  description = "Identities (emails) the admin API and scheduled jobs accept besides Cloud Scheduler's (ADMIN_ALLOWED_EMAILS); give them run.invoker through admin_members too"
}

variable "download_attachment_public" {
  type        = bool
  default     = false
  description = <<-EOT
    download_attachment checks each caller's own ERPNext token and ERPNext's permission, so it can
    safely be public; left private (invoker-restricted) until you decide people reach it directly.
  EOT
}

variable "min_instances" {
  type        = number
  default     = 0
  description = "Warm instances of the webhook receiver (1 removes its cold start, at a cost)"
}
