# ERPNext Bridge on Google Cloud. The files of this folder, by subject:
#   versions.tf   provider and Terraform versions      variables.tf  what an install chooses
#   locals.tf     the bridge as data: topics, subscriptions, entry points, secrets, jobs, TTLs
#                 (tests/infra/test_infra.py proves this data equals the code's configuration)
#   apis.tf       the Google APIs the bridge uses       pubsub.tf     topics, push subscriptions
#   functions.tf  one 2nd-gen function per entry point, its staged source
#   iam.tf        service accounts and their grants     secrets.tf    Secret Manager (no values)
#   firestore.tf  the database and its TTL policies     scheduler.tf  Cloud Scheduler jobs
#   outputs.tf    URLs and identities the operator needs next (docs/OPERATIONS.md)

terraform {
  required_version = ">= 1.5"
  # State in a bucket of the project: `terraform init -backend-config=bucket=<project>-bridge-tfstate`
  # (docs/OPERATIONS.md creates it; cloudbuild.yaml passes it).
  backend "gcs" {
    prefix = "erpnext-bridge"
  }
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.40, < 7"
    }
  }
}

provider "google" {
  project = var.project
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project
}
