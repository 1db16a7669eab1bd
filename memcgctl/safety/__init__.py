"""What makes a change safe to interrupt: per-group locks and the undo journal
(journal), stop signals as exceptions (signals), and time as a value (deadline)."""
