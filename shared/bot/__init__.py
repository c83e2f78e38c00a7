"""The Telegram bot and the inbound WhatsApp webhook: commands, conversations, links."""
