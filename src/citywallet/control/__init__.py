"""Dual control: operator actions that one operator proposes and another approves."""
