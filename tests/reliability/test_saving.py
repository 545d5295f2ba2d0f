"""save_pretrained loses nothing and touches nothing of the caller's."""

import pytest
import torch
from model_helpers import perturb_norms_and_biases
from safetensors.torch import load_file

import fastbert

CFG = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20)


def test_untied_decoder_is_written_and_reloads_equal(tmp_path):
    torch.manual_seed(0)
    model = fastbert.BertForMaskedLM(fastbert.BertConfig(**CFG, tie_word_embeddings=False)).eval()
    decoder, embeddings = model.cls.predictions.decoder.weight, model.bert.embeddings.word_embeddings.weight
    assert decoder.data_ptr() != embeddings.data_ptr()
    model.save_pretrained(tmp_path)
    assert "cls.predictions.decoder.weight" in load_file(tmp_path / "model.safetensors")
    again = fastbert.BertForMaskedLM.from_pretrained(tmp_path)
    torch.testing.assert_close(again.cls.predictions.decoder.weight, decoder, rtol=0, atol=0)
    ids = torch.randint(1, 40, (2, 6))
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).logits, model(input_ids=ids).logits)


def test_tied_decoder_written_once(tmp_path):
    model = fastbert.BertForMaskedLM(fastbert.BertConfig(**CFG)).eval()
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert "cls.predictions.decoder.weight" not in saved and "bert.embeddings.word_embeddings.weight" in saved
    again = fastbert.BertForMaskedLM.from_pretrained(tmp_path)
    assert again.cls.predictions.decoder.weight is again.bert.embeddings.word_embeddings.weight


@pytest.mark.parametrize("safe", [True, False])
def test_state_dict_argument_is_not_mutated(tmp_path, safe):
    # biases and norms away from their initial 0 and 1: a tensor the file lacked would load back as those
    model = perturb_norms_and_biases(fastbert.BertForMaskedLM(fastbert.BertConfig(**CFG))).eval()
    sd = model.state_dict()
    keys = list(sd)
    model.save_pretrained(tmp_path, state_dict=sd, safe_serialization=safe)
    assert list(sd) == keys
    again = fastbert.BertForMaskedLM.from_pretrained(tmp_path)
    assert set(again.state_dict()) == set(keys)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_save_into_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        fastbert.BertModel(fastbert.BertConfig(**CFG)).save_pretrained(tmp_path / "f")


def test_half_precision_round_trip_keeps_dtype_and_values(tmp_path):
    model = perturb_norms_and_biases(fastbert.BertModel(fastbert.BertConfig(**CFG))).eval().half()
    model.save_pretrained(tmp_path)
    again = fastbert.BertModel.from_pretrained(tmp_path, torch_dtype="auto")
    assert again.dtype == torch.float16
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_saved_weights_do_not_alias_the_model(tmp_path):
    """Saving copies: editing the model afterwards does not change what was written."""
    model = fastbert.BertModel(fastbert.BertConfig(**CFG)).eval()
    model.save_pretrained(tmp_path)
    q = model.encoder.layer[0].attention.self.query.weight
    before = q.detach().clone()
    with torch.no_grad():
        q.add_(1.0)
    saved = load_file(tmp_path / "model.safetensors")["encoder.layer.0.attention.self.query.weight"]
    torch.testing.assert_close(saved, before, rtol=0, atol=0)


def test_interrupted_save_over_a_sharded_save_leaves_the_earlier_one_loadable(tmp_path, monkeypatch):
    """The earlier save's shards are removed only once the new weights are complete: a save that fails
    mid-way leaves the earlier index and every shard it names (the earlier model loads back)."""
    import safetensors.torch

    torch.manual_seed(0)
    old = perturb_norms_and_biases(fastbert.BertModel(fastbert.BertConfig(**CFG))).eval()
    old.save_pretrained(tmp_path, max_shard_size=5_000)  # 4 shards
    assert (tmp_path / "model.safetensors.index.json").exists()
    new = fastbert.BertModel(fastbert.BertConfig(**CFG)).eval()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", interrupted)
    for shard_size in ("5GB", 20_000):  # one file, then 2 shards (the earlier save had 4)
        with pytest.raises(KeyboardInterrupt):
            new.save_pretrained(tmp_path, max_shard_size=shard_size)
        assert not (tmp_path / "model.safetensors").exists()
        again = fastbert.BertModel.from_pretrained(tmp_path)
        for key, value in old.state_dict().items():
            torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0, msg=key)
