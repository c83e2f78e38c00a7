# Topics, the dead-letter topic and the push subscriptions (retries on, dead-lettering after
# var.max_delivery_attempts). Consumers raise on retryable errors: the 5xx makes Pub/Sub redeliver
# with backoff; permanent errors are recorded and acknowledged by the runtime.

resource "google_pubsub_topic" "events" {
  for_each                   = toset(local.topics)
  project                    = var.project
  name                       = each.value
  message_retention_duration = "86400s"
  depends_on                 = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  project                    = var.project
  name                       = local.dead_letter_topic
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.apis]
}

resource "google_pubsub_subscription" "push" {
  for_each = local.subscriptions
  project  = var.project
  name     = each.key
  topic    = google_pubsub_topic.events[each.value.topic].id

  # For push, the ack deadline is how long Pub/Sub waits for the function's answer.
  ack_deadline_seconds = min(600, local.functions[each.value.entry_point].timeout)
  # As long as consumers accept an event (MAX_EVENT_AGE_HOURS, 168): older ones are recorded.
  message_retention_duration = "604800s"

  push_config {
    # The path names the topic, as functions-framework's Pub/Sub-to-CloudEvent conversion expects
    # (the devstack pushes the same way).
    push_endpoint = "${local.function_url[each.value.entry_point]}/projects/${var.project}/topics/${each.value.topic}"
    oidc_token {
      service_account_email = google_service_account.pubsub_push.email
      audience              = local.function_url[each.value.entry_point]
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = "" # never expires for inactivity
  }

  depends_on = [google_cloudfunctions2_function.fn]
}

resource "google_pubsub_subscription" "dead_letter_recorder" {
  project                    = var.project
  name                       = local.dead_letter_subscription.name
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = local.functions[local.dead_letter_subscription.entry_point].timeout
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = "${local.function_url[local.dead_letter_subscription.entry_point]}/projects/${var.project}/topics/${local.dead_letter_subscription.topic}"
    oidc_token {
      service_account_email = google_service_account.pubsub_push.email
      audience              = local.function_url[local.dead_letter_subscription.entry_point]
    }
  }

  # The end of the line: retried with backoff for the retention period, never dead-lettered.
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_cloudfunctions2_function.fn]
}
