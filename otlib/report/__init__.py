"""What turns runs into a reader's material: the notebook context (a folder per run), the notebooks' parameter
rules and their one checker, figure style and byte-stable savefig, and the Papermill runner of every notebook."""
