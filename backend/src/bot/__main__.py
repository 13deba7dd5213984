"""``python -m backend.src.bot``."""

from backend.src.bot.main import main_exit

main_exit()
