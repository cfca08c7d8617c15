"""One module per trigger; each registers what it handles on its own `router`."""
