"""Tables, not only images: CTGAN's method on the one engine (:mod:`.recipe`), run folders
and synthetic rows (:mod:`.runner`), and the measures of synthetic tables
(:mod:`.evaluate`)."""

from ganforge.tables.recipe import TableConfig
from ganforge.tables.runner import TableModel, load_table_model, synthesize_table, train_table

__all__ = ["TableConfig", "TableModel", "load_table_model", "synthesize_table", "train_table"]
