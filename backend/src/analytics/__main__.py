"""``python -m backend.src.analytics``."""

from backend.src.analytics.main import main_exit

main_exit()
