"""What turns runs into a reader's material: the notebook context, figure style and byte-stable savefig,
and the Papermill runner of every notebook."""
