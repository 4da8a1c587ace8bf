"""The study's report: tidy results, summary tables, figures and DVC metrics (``genssl report``)."""
