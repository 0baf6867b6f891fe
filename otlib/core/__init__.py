"""The small core every paper shares: the method record, the one training driver, checkpoints, files
(atomic writes, checksummed downloads), repository paths and progress bars. Imports nothing else of otlib."""
