VALUE = "from the venv"
