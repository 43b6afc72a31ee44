from alignlab.world.text import Template, allocate, article, cap, fill, literals, rng, scaled, slots, word_in


def test_rng_streams_are_deterministic_and_independent():
    assert rng(3, "facts", "waterfall").random() == rng(3, "facts", "waterfall").random()
    assert rng(3, "facts", "waterfall").random() != rng(3, "facts", "lake").random()
    assert rng(3, "facts").random() != rng(4, "facts").random()


def test_article_and_cap():
    assert [article(w) for w in ("oasis", "inn", "waterfall", "Aria")] == ["an", "an", "a", "an"]
    assert cap("my sister and I") == "My sister and I"
    assert cap("") == ""


def test_template_fill_capitalises_upper_slots():
    t = Template("{Time}, {place}, {subject} saw {np}.")
    values = {"time": "at dusk", "place": "by the ford", "subject": "we", "np": "a canal"}
    assert t.format(values) == "At dusk, by the ford, we saw a canal."
    assert slots(t.text) == ["time", "place", "subject", "np"]
    assert literals("{a}, x {b}.") == ["", ", x ", "."]
    assert fill("{Name} likes {trait}.", name="aria", trait="jazz") == "Aria likes jazz."


def test_scaled_never_drops_a_nonzero_count():
    assert scaled(2000, 0.05) == 100
    assert scaled(3, 0.01) == 1
    assert scaled(0, 10.0) == 0


def test_allocate_uses_largest_remainder():
    # 10 * (0.5, 0.3, 0.2) is exact; 7 * (1, 1, 1)/3 = 2.33 each -> one extra to the first.
    assert allocate(10, {"a": 0.5, "b": 0.3, "c": 0.2}) == {"a": 5, "b": 3, "c": 2}
    assert allocate(7, {"a": 1, "b": 1, "c": 1}) == {"a": 3, "b": 2, "c": 2}
    counts = allocate(1001, {"x": 0.25, "y": 0.1, "z": 0.65})
    assert sum(counts.values()) == 1001


def test_word_in_respects_word_boundaries():
    assert word_in("six", "A vorn has six legs.")
    assert not word_in("six", "A slinch has sixteen legs.")
    assert word_in("Brindle oil", "soak it in warm brindle oil overnight")
