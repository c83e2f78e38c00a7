"""Operations: the error records triaged and replayed, the scheduled jobs' lock and
records, and the admin API over them."""
