"""The only modules that import an SDK; each translates its SDK's errors into shared.errors."""
