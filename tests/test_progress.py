from genssl import progress as progress_module
from genssl.progress import progress


def test_progress_yields_every_item_and_reports_the_count(capsys):
    assert list(progress(iter(range(7)), total=7, desc="prepare x", unit="img")) == list(range(7))
    err = capsys.readouterr().err
    # stderr is not a terminal here: the bar is ASCII, as it appears in a rule's log file.
    assert "prepare x: 100%|##########| 7/7" in err and "img/s" in err


def test_log_files_get_few_updates(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "LOG_INTERVAL", 3600.0)
    list(progress(range(10_000), total=10_000, desc="many"))
    # Only the first and the final state are drawn within the interval.
    assert capsys.readouterr().err.count("many:") == 2


def test_a_bar_advanced_by_hand_counts_what_it_is_told(capsys):
    with progress_module.progress_bar(60, desc="generate shard 0", unit="img") as bar:
        for _ in range(3):
            bar.update(20)  # one batch of 2 images x 10 variants
    err = capsys.readouterr().err
    assert "generate shard 0: 100%|##########| 60/60" in err and "img/s" in err
