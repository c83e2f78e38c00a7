# ERPNext Bridge on Google Cloud: the Pub/Sub topology the code's routing table names.
# Functions, Scheduler jobs, secrets, Firestore TTL and service accounts follow with the operations work.

terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0"
    }
  }
}

variable "project" {
  type        = string
  description = "Google Cloud project id"
}

variable "max_delivery_attempts" {
  type        = number
  default     = 10
  description = "Deliveries before a message is dead-lettered into an error record"
}

locals {
  topics = ["erp-invoices", "erp-files", "erp-service-requests"]
  # name => topic; mirrors shared/core/routing.py SUBSCRIPTIONS
  subscriptions = {
    "sheets-sync-invoices"      = "erp-invoices"
    "drive-upload-files"        = "erp-files"
    "notifier-invoices"         = "erp-invoices"
    "notifier-service-requests" = "erp-service-requests"
  }
}

resource "google_pubsub_topic" "events" {
  for_each = toset(local.topics)
  project  = var.project
  name     = each.value
}

resource "google_pubsub_topic" "dead_letter" {
  project = var.project
  name    = "erp-dead-letter"
}

resource "google_pubsub_subscription" "dead_letter_recorder" {
  project = var.project
  name    = "dead-letter-recorder"
  topic   = google_pubsub_topic.dead_letter.id
}
