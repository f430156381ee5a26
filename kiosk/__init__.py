"""The diner's self-order kiosk: plain-Python view models (``kiosk.viewmodel``),
payment (``kiosk.payment``) and a payment terminal simulator on a pty
(``restobox.dev.terminal_sim``). The Kivy screens bind to the view models."""
