"""Datasets: real IDX image sets (`vision`), batching and input validation (`pipeline`)."""
