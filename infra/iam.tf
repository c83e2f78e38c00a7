# Service accounts and least privilege:
# - each function identity (locals.identities): secretAccessor on only the secrets its entry
#   points read (secrets.tf), datastore.user on only the bridge's Firestore database when it uses
#   Firestore, pubsub.publisher on only the event topics for the receiver and the operations'
#   replays; nothing else. No identity gets Eventarc roles: subscriptions push directly.
# - pubsub-push: the OIDC identity of the push subscriptions, run.invoker on only the Pub/Sub
#   consumers.
# - scheduler: the OIDC identity of Cloud Scheduler, run.invoker on only the jobs' targets.

resource "google_service_account" "identity" {
  for_each     = local.identities
  project      = var.project
  account_id   = "bridge-${each.key}"
  display_name = "ERPNext Bridge ${each.key}"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "pubsub_push" {
  project      = var.project
  account_id   = "bridge-pubsub-push"
  display_name = "ERPNext Bridge Pub/Sub push (invokes the consumers)"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  project      = var.project
  account_id   = "bridge-scheduler"
  display_name = "ERPNext Bridge Cloud Scheduler (invokes the scheduled jobs)"
  depends_on   = [google_project_service.apis]
}

resource "google_pubsub_topic_iam_member" "ingress_publisher" {
  for_each = {
    for pair in setproduct(
      [for name, spec in local.identities : name if spec.publishes], local.topics
    ) : "${pair[0]}/${pair[1]}" => { identity = pair[0], topic = pair[1] }
  }
  project = var.project
  topic   = google_pubsub_topic.events[each.value.topic].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.identity[each.value.identity].email}"
}

# Firestore has no IAM policy of its own resources: datastore.user is granted on the project, and
# the condition narrows it to the bridge's database. What it protects: every other Firestore (or
# Datastore-mode) database in the project, present or future, is out of these identities' reach;
# the code uses only `(default)` (shared/adapters/firestore.py passes no database). What it cannot:
# IAM sees a database, never a collection or a document, so each identity with Firestore can read
# and write every collection of the bridge's database (error records, claims, Telegram links),
# not only its own; only the code keeps them apart. The receiver has no Firestore at all.
resource "google_project_iam_member" "firestore_user" {
  for_each = toset([for name, spec in local.identities : name if spec.firestore])
  project  = var.project
  role     = "roles/datastore.user"
  member   = "serviceAccount:${google_service_account.identity[each.value].email}"

  condition {
    title       = "bridge-firestore-database-only"
    description = "Only the bridge's Firestore database, not the project's others"
    expression  = "resource.name == \"projects/${var.project}/databases/${google_firestore_database.default.name}\""
  }

  # A changed condition replaces the grant: the new one first, so Firestore is never unreachable.
  lifecycle {
    create_before_destroy = true
  }
}

locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # Who may invoke each function besides the public and admin_members.
  invoker_of = {
    for name, fn in local.functions : name => (
      fn.access == "pubsub" ? "serviceAccount:${google_service_account.pubsub_push.email}" :
      fn.access == "scheduler" ? "serviceAccount:${google_service_account.scheduler.email}" :
      fn.access == "public" ? "allUsers" : null
    )
  }
  invoker_grants = merge(
    { for name, member in local.invoker_of : "${name}/main" => { function = name, member = member } if member != null },
    merge([
      for name, fn in local.functions : {
        for member in var.admin_members : "${name}/${member}" => { function = name, member = member }
      } if fn.access == "private"
    ]...),
  )
}

# run.invoker on the function's Cloud Run service, one grant per (function, caller).
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.invoker_grants
  project  = var.project
  location = var.region
  name     = google_cloudfunctions2_function.fn[each.value.function].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value.member
  # allUsers only on receive_erp_webhook, telegram_webhook and whatsapp_webhook (and
  # download_attachment if chosen), which verify an HMAC signature, a secret token or the
  # caller's ERPNext token on every request; the rest get a service account or admin_members.
}

# Pub/Sub mints the push OIDC tokens as pubsub-push, and moves dead letters: it must publish to
# the dead-letter topic and acknowledge on the source subscriptions.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.pubsub_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each     = local.subscriptions
  project      = var.project
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
