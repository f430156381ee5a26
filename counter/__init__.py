"""The cashier's counter: take payments (cash, card, QR, split), refunds,
walk-in orders and the shift's drawer, recorded before they are sent."""
