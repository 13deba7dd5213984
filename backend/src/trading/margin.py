"""A perpetual symbol's margin: where its isolated position would be liquidated, and which entries
that refuses. One object per trader; spot symbols have none (long-only, no liquidation).

Leverage is applied last: sizes and caps are notional (the exposure, what the position gains or
loses); the leverage only sets the isolated margin posted (notional / leverage) and so the
liquidation price. An entry is refused, with the reason journaled, when
- its isolated margin (plus what open positions already hold) is more than the equity (Binance -2019);
- the leverage is above what the exchange's tier for that notional allows;
- its stop-loss does not sit inside the liquidation price (the stop must be hit first);
- its liquidation price is closer than ``liquidation_buffer_atr`` × ATR to the entry.
"""

from __future__ import annotations

from backend.src.core.config import SymbolConfig
from backend.src.market.perpetual import Brackets, liquidation_price
from backend.src.trading.book import PositionBook


class Margin:
    def __init__(self, symbol: str, cfg: SymbolConfig, brackets: Brackets | None = None) -> None:
        self.cfg = cfg
        self.leverage = cfg.leverage
        rows = cfg.brackets
        self.brackets = brackets or (Brackets.from_rows(rows) if rows else Brackets.default(symbol))

    def liquidation(self, book: PositionBook) -> float:
        """The open position's liquidation price (0 when flat)."""
        return liquidation_price(book.qty, book.avg_price, book.margin, self.brackets) if book.qty else 0.0

    def refuse(self, book: PositionBook, qty: float, price: float, stop_pct: float, atr: float) -> str:
        """Why a position of signed ``qty`` entered at ``price`` must not be opened ('' when it may)."""
        notional = abs(qty) * price
        allowed = self.brackets.max_leverage(notional)
        if self.leverage > allowed:
            return f"leverage {self.leverage:g}x is above the {allowed:g}x allowed at {notional:,.0f} notional"
        margin = notional / self.leverage
        if margin > book.equity:
            return f"margin insufficient: {margin:,.2f} needed, equity {book.equity:,.2f}"
        liq = liquidation_price(qty, price, margin, self.brackets)
        if liq <= 0:
            return ""  # a long at 1x: nothing to liquidate before zero
        if stop_pct:
            stop = price * (1 - stop_pct / 100) if qty > 0 else price * (1 + stop_pct / 100)
            if (stop <= liq) if qty > 0 else (stop >= liq):
                return (f"stop-loss {stop:.6g} is beyond the liquidation price {liq:.6g} "
                        f"(lower the leverage or tighten stop_loss_pct)")
        buffer = self.cfg.liquidation_buffer_atr * atr
        if buffer and abs(price - liq) < buffer:
            return (f"liquidation price {liq:.6g} is closer than {self.cfg.liquidation_buffer_atr:g} ATR "
                    f"({buffer:.6g}) to the entry {price:.6g}")
        return ""
