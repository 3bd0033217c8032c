from stockd.cli import app

app()
