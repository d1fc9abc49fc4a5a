"""util/summaries.py: reading event files back (the training loop asks whether a run dir
already holds its graph before writing one) survives files a killed run cut short or
damaged, and finds the graph wherever it is."""

import tensorflow.compat.v1 as tf

from util import summaries


def write_event_file(directory, suffix, with_graph):
    """An event file with a scalar at step 1 (and the default graph's events if asked)."""
    with tf.Graph().as_default() as graph:
        tf.constant(1.0, name="c")
        writer = tf.summary.FileWriter(str(directory), graph=graph if with_graph else None,
                                       filename_suffix=suffix)
        writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag="x", simple_value=2.0)]), 1)
        writer.close()
    return next(directory.glob("events.out.tfevents.*" + suffix))


def test_a_cut_or_damaged_event_file_gives_its_readable_records(tmp_path):
    path = write_event_file(tmp_path, ".a", with_graph=True)
    whole = path.read_bytes()
    events = list(summaries.read_events(str(path)))
    assert [e.summary.value[0].simple_value for e in events if e.summary.value] == [2.0]
    assert any(e.HasField("graph_def") for e in events)
    path.write_bytes(whole[:-7])  # cut in the last record: the records before it
    assert len(list(summaries.read_events(str(path)))) == len(events) - 1
    # The last record's length intact, its data garbage (not an Event): the ones before.
    last = len(whole) - len(events[-1].SerializeToString()) - 4
    path.write_bytes(whole[:last] + b"\xff" * (len(whole) - last - 4) + whole[-4:])
    assert len(list(summaries.read_events(str(path)))) == len(events) - 1


def test_has_graph_event_looks_past_a_damaged_file_and_a_file_without_graph(tmp_path):
    damaged = tmp_path / "events.out.tfevents.0.damaged"
    damaged.write_bytes(b"\x05" + b"\x00" * 11 + b"\xff" * 5 + b"\x00" * 4)
    write_event_file(tmp_path, ".b", with_graph=False)
    assert not summaries.has_graph_event(str(tmp_path))
    write_event_file(tmp_path, ".c", with_graph=True)
    assert summaries.has_graph_event(str(tmp_path))
