"""Read queries and small writes, each scoped to the sub-account it is given.

Hot lists (threads, messages, contacts) are SQLAlchemy Core statements that return
plain rows: no ORM identity map or object graph on the read path (DESIGN.md section 5).
"""
