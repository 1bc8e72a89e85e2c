"""One client per peer service (Book, User, Notification) over a shared HTTP session."""
