"""Drive filing: each ERPNext File copied once into its folder, linked back, optionally
offloaded; the backfill; the download proxy."""
