"""pandera schemas for raw and canonical records, and the quarantine split."""
