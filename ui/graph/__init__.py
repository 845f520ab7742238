"""The model graph drawn natively: a layered layout in a QGraphicsView, coloured by an error metric."""
