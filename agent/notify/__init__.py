"""Telling people: the message sender (send.py), its words in zh/en (text.py), the told-once book
(book.py), the heartbeat and the ACR build watch."""
