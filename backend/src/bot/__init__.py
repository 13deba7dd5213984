"""The Telegram bot: a process the manager supervises, answering the allowed chats and steering the
fleet through the managers' command stream (``python -m backend.src.bot``)."""
