# The bridge as data. Every name here is one the code uses (shared/core/routing.py, the entry
# points in functions/*/main.py, the env.secret() calls in shared/, the `expire_at` writes in
# shared/adapters/): tests/infra/test_infra.py parses this file and proves both directions.

locals {
  # shared/core/routing.py TOPICS and DEAD_LETTER
  topics            = ["erp-invoices", "erp-files", "erp-service-requests"]
  dead_letter_topic = "erp-dead-letter"

  # shared/core/routing.py SUBSCRIPTIONS: push subscriptions we name ourselves (not Eventarc's
  # generated ones), because a dead letter's CloudPubSubDeadLetterSourceSubscription attribute is
  # how record_dead_letter tells which consumer gave up (routing.consumer_of), and because only a
  # subscription of our own carries a dead-letter policy and max delivery attempts in Terraform.
  subscriptions = {
    "sheets-sync-invoices"      = { topic = "erp-invoices", entry_point = "sync_invoice_sheet" }
    "drive-upload-files"        = { topic = "erp-files", entry_point = "upload_attachment" }
    "notifier-invoices"         = { topic = "erp-invoices", entry_point = "send_alerts" }
    "notifier-service-requests" = { topic = "erp-service-requests", entry_point = "send_alerts" }
  }
  # shared/core/routing.py DEAD_LETTER_SUBSCRIPTION: never dead-letters itself (it is the end).
  dead_letter_subscription = { name = "dead-letter-recorder", topic = "erp-dead-letter", entry_point = "record_dead_letter" }

  # Secret Manager secret id => the environment variable the code reads it as (its env.secret call).
  # No values: docs/OPERATIONS.md adds them with gcloud.
  secrets = {
    "webhook-secret"            = "WEBHOOK_SECRET"
    "erpnext-api-key"           = "ERPNEXT_API_KEY"
    "erpnext-api-secret"        = "ERPNEXT_API_SECRET"
    "drive-oauth-client-id"     = "DRIVE_OAUTH_CLIENT_ID"
    "drive-oauth-client-secret" = "DRIVE_OAUTH_CLIENT_SECRET"
    "drive-oauth-refresh-token" = "DRIVE_OAUTH_REFRESH_TOKEN"
    "telegram-bot-token"        = "TELEGRAM_BOT_TOKEN"
    "telegram-webhook-secret"   = "TELEGRAM_WEBHOOK_SECRET"
    "twilio-auth-token"         = "TWILIO_AUTH_TOKEN"
  }
  # Secrets mounted only when the install uses the feature (a mounted secret without a version
  # fails the deploy).
  optional_secrets = {
    "drive-oauth-client-id"     = var.drive_auth == "oauth_user"
    "drive-oauth-client-secret" = var.drive_auth == "oauth_user"
    "drive-oauth-refresh-token" = var.drive_auth == "oauth_user"
    "twilio-auth-token"         = var.whatsapp_enabled
  }

  # One runtime identity per function folder, except erp_webhook's, whose entry points need
  # disjoint things: the public receiver only verifies and publishes, the dead-letter recorder
  # only writes Firestore, the operations replay. Each identity gets exactly the secrets its
  # entry points read (shared/roots/erp_webhook.py reads the webhook secret only in the
  # receiver), Firestore only in the bridge's database (iam.tf), publishing only to the topics.
  identities = {
    "erp-ingress"      = { publishes = true, firestore = false, secrets = ["webhook-secret"] }
    "erp-dead-letters" = { publishes = false, firestore = true, secrets = [] }
    # The operations replay events (publish: the original, or the document as ERPNext has it
    # now, with the bridge's ERPNext token) and keep the error records and sync executions in
    # Firestore. A replay publishes; it never signs a webhook: no webhook secret.
    "erp-operations" = { publishes = true, firestore = true, secrets = [
      "erpnext-api-key", "erpnext-api-secret",
    ] }
    "sheets-sync" = { publishes = false, firestore = true, secrets = ["erpnext-api-key", "erpnext-api-secret"] }
    "drive-upload" = { publishes = false, firestore = true, secrets = [
      "erpnext-api-key", "erpnext-api-secret",
      "drive-oauth-client-id", "drive-oauth-client-secret", "drive-oauth-refresh-token",
    ] }
    "notifier" = { publishes = false, firestore = true, secrets = [
      "erpnext-api-key", "erpnext-api-secret",
      "telegram-bot-token", "telegram-webhook-secret", "twilio-auth-token",
    ] }
  }

  # Every entry point (a functions_framework decorator in functions/<source>/main.py) is its own
  # deployed function. trigger: "pubsub" (a push subscription above delivers to it) or "http".
  # access: "public" (authenticates callers itself: a signature or a secret token), "scheduler"
  # (Cloud Scheduler's OIDC identity and admin_members), "private" (admin_members only).
  # Sizes, timeouts and max instances follow the quotas each one lives under.
  functions = {
    # ERPNext waits 5 s and Frappe's publish confirmation takes ~10 ms: short timeout, many
    # concurrent requests per instance (it only verifies and publishes), enough instances for
    # a Data-Import burst. Pub/Sub has no quota we approach.
    receive_erp_webhook = {
      source = "erp_webhook", identity = "erp-ingress", trigger = "http", access = "public"
      memory = "256Mi", cpu = "1", concurrency = 80, timeout = 30, max_instances = 20
    }
    # Dead letters are rare; one Firestore write each.
    record_dead_letter = {
      source = "erp_webhook", identity = "erp-dead-letters", trigger = "pubsub", access = "pubsub"
      memory = "256Mi", cpu = "1", concurrency = 4, timeout = 60, max_instances = 2
    }
    # The admin API (error log, CSV export, bulk status, replay of up to 1000 records): people
    # with an identity token (admin_members, admin_emails) only; one or two at a time.
    admin_api = {
      source = "erp_webhook", identity = "erp-operations", trigger = "http", access = "private"
      memory = "512Mi", cpu = "1", concurrency = 4, timeout = 300, max_instances = 2
    }
    # Replays pending errors; one run at a time (a job lock), so one instance.
    retry_errors = {
      source = "erp_webhook", identity = "erp-operations", trigger = "http", access = "scheduler"
      memory = "512Mi", cpu = "1", concurrency = 1, timeout = 540, max_instances = 1
    }
    # Sheets allows 60 writes/min per user and the service account is one user: events are
    # queued in Firestore and one flusher at a time (a lease) writes them in one batchUpdate,
    # backing off up to 64 s on 429. More instances would only wait on the lease, so 3 at most.
    # The timeout covers a gather, a 64 s backoff and a retry, inside Pub/Sub's 600 s ack deadline.
    sync_invoice_sheet = {
      source = "sheets_sync", identity = "sheets-sync", trigger = "pubsub", access = "pubsub"
      memory = "512Mi", cpu = "1", concurrency = 1, timeout = 300, max_instances = 3
    }
    # One reconciliation at a time (pages of 500 over 10,000 invoices, then the same throttled
    # sheet writes): one instance, Scheduler's longest attempt deadline (30 min).
    reconcile_invoices = {
      source = "sheets_sync", identity = "sheets-sync", trigger = "http", access = "scheduler"
      memory = "512Mi", cpu = "1", concurrency = 1, timeout = 1800, max_instances = 1
    }
    # A 200 MB attachment streams in 8 MiB chunks (~35 MB above idle): 1 GiB leaves room for a
    # few at once. 540 s stays inside the push ack deadline (600 s). Ten instances stay far below
    # Drive's per-user write rate and do not overload a small ERPNext with downloads.
    upload_attachment = {
      source = "drive_upload", identity = "drive-upload", trigger = "pubsub", access = "pubsub"
      memory = "1Gi", cpu = "1", concurrency = 1, timeout = 540, max_instances = 10
    }
    backfill_attachments = {
      source = "drive_upload", identity = "drive-upload", trigger = "http", access = "scheduler"
      memory = "1Gi", cpu = "1", concurrency = 1, timeout = 1800, max_instances = 1
    }
    # Streams a file to a person (bounded by the chunk); long timeout for slow links.
    download_attachment = {
      source = "drive_upload", identity = "drive-upload", trigger = "http"
      access = var.download_attachment_public ? "public" : "private"
      memory = "512Mi", cpu = "1", concurrency = 4, timeout = 900, max_instances = 5
    }
    # Telegram allows 30 msg/s overall and 20/min per group; the drain is single-lease (one
    # instance sends at a time, paced), so extra instances only queue alerts: few of them.
    # A call drains for at most NOTIFIER_BUDGET_SECONDS (20) inside a 60 s timeout.
    send_alerts = {
      source = "notifier", identity = "notifier", trigger = "pubsub", access = "pubsub"
      memory = "512Mi", cpu = "1", concurrency = 1, timeout = 60, max_instances = 3
    }
    # Telegram waits ~60 s for an answer and redelivers otherwise.
    telegram_webhook = {
      source = "notifier", identity = "notifier", trigger = "http", access = "public"
      memory = "512Mi", cpu = "1", concurrency = 8, timeout = 60, max_instances = 5
    }
    # Twilio waits 15 s.
    whatsapp_webhook = {
      source = "notifier", identity = "notifier", trigger = "http", access = "public"
      memory = "512Mi", cpu = "1", concurrency = 8, timeout = 15, max_instances = 3
    }
    drain_alerts = {
      source = "notifier", identity = "notifier", trigger = "http", access = "scheduler"
      memory = "512Mi", cpu = "1", concurrency = 1, timeout = 60, max_instances = 1
    }
    daily_digest = {
      source = "notifier", identity = "notifier", trigger = "http", access = "scheduler"
      memory = "512Mi", cpu = "1", concurrency = 1, timeout = 120, max_instances = 1
    }
  }

  # Cloud Scheduler job => the scheduled entry point it calls.
  scheduled_jobs = {
    "reconcile-invoices"   = { entry_point = "reconcile_invoices", schedule = "*/15 * * * *" }
    "backfill-attachments" = { entry_point = "backfill_attachments", schedule = "17 * * * *" }
    # A backlog left by throttling waits at most a minute for the next event or this job.
    "drain-alerts" = { entry_point = "drain_alerts", schedule = "* * * * *" }
    # Sent once per day however often it runs: a retry of this job sends nothing twice.
    "daily-digest" = { entry_point = "daily_digest", schedule = "0 8 * * *" }
    # Pending error records replayed; a record that keeps failing stays pending for people.
    "retry-errors" = { entry_point = "retry_errors", schedule = "*/30 * * * *" }
  }

  # Firestore collections whose documents carry `expire_at`: the TTL policy deletes them
  # within ~24 h after it (shared/adapters/firestore.py, shared/adapters/bot_store.py).
  ttl_field = "expire_at"
  ttl_collections = [
    "idempotency",            # claims: consumers' and the Telegram bot's update ids
    "alerts",                 # the alert outbox's memory of what was queued and sent
    "whatsapp_sessions",      # a client's 24-hour window
    "telegram_link_codes",    # one-time link codes, kept a while after use so they are refused
    "telegram_conversations", # abandoned guided conversations
    "telegram_replies",       # the bot's replies, counted in Telegram's limits with the alerts
    "telegram_strangers",     # when an unlinked chat was last answered
  ]

  # Composite indexes of the queries that filter on one field and sort on another (the emulator
  # needs none; production refuses such a query without its index). The error log's filters are
  # any combination of equalities, newest first: one index per filter field with last_seen
  # descending lets Firestore merge them for every combination (shared/adapters/firestore.py).
  composite_indexes = {
    "errors-integration"  = { collection = "errors", equal = "integration", newest_first = "last_seen" }
    "errors-operation"    = { collection = "errors", equal = "operation", newest_first = "last_seen" }
    "errors-status"       = { collection = "errors", equal = "status", newest_first = "last_seen" }
    "errors-entity-type"  = { collection = "errors", equal = "entity_type", newest_first = "last_seen" }
    "sync-executions-job" = { collection = "sync_executions", equal = "job", newest_first = "started_at" }
  }

  # Folder => the settings every function of it gets (plus var.function_env[folder]).
  folder_env = {
    # ERPNEXT_URL: the operations' replay of a document as it is now (the only reader there).
    erp_webhook = { ERP_SITE = var.erp_site, ERPNEXT_URL = var.erpnext_url }
    sheets_sync = {
      ERPNEXT_URL           = var.erpnext_url
      ERPNEXT_PUBLIC_URL    = var.erpnext_public_url
      SHEETS_SPREADSHEET_ID = var.spreadsheet_id
    }
    drive_upload = { ERPNEXT_URL = var.erpnext_url, DRIVE_AUTH = var.drive_auth }
    notifier = {
      ERPNEXT_URL           = var.erpnext_url
      ERPNEXT_PUBLIC_URL    = var.erpnext_public_url
      TELEGRAM_BOT_USERNAME = var.telegram_bot_username
      # Twilio signs the URL it calls: this one (outputs.whatsapp_webhook_url).
      WHATSAPP_WEBHOOK_PUBLIC_URL = var.whatsapp_enabled ? local.function_url["whatsapp_webhook"] : ""
    }
  }

  # Cloud Run's deterministic URL of each function (https://NAME-PROJECT_NUMBER.REGION.run.app):
  # known before the function exists, so a function can be told its own address (the OIDC
  # audience, Twilio's signed URL) without a dependency cycle.
  function_url = {
    for name, fn in local.functions :
    name => "https://${replace(name, "_", "-")}-${data.google_project.this.number}.${var.region}.run.app"
  }
  sources = toset([for fn in local.functions : fn.source])
}
