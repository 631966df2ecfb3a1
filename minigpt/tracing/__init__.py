"""The life of a token, recorded: every stage of a forward pass, and the gradient walking back.

    from minigpt import trace
    t = trace(model, tokenizer, "First Citizen:", max_new_tokens=3)
    print(t.report())                # the twelve stages, as text
    t.to_html("trace.html")          # one self-contained page to read (docs/trace.md)
    t.to_json("trace.json")

The twelve stages (STAGES), for the prompt (step 0) and then for the forward pass that reads
each generated token (step s reads the token chosen at step s - 1):

     1 text -> bytes                 UTF-8 bytes of the text
     2 tokenization (BPE)            regex chunks and every merge applied (pair, rank, new id)
     3 token ids                     the ids the model reads
     4 token embeddings              rows of wte
     5 positional embeddings         rows of wpe, and their sum with the token rows
     6 multi-head self-attention     per layer: LayerNorm stats, q/k/v, scores, weights, output
     7 feed-forward network + LN     per layer: ln_2, c_fc (pre-GELU), GELU, c_proj
     8 residual connections          per layer: the residual stream's norm per position
     9 stacked layers                norms through the stack, and the logit lens
    10 final contextual embedding    ln_f
    11 projection to vocabulary      logits
    12 softmax + next token          probabilities, top-k table, sampling filter, chosen token

The trace reads the model's real forward pass through minigpt.recording (a Recorder keeps
each stage's output, and the arrays the fused attention op computed: q, k, v, scores, mask,
weights, y); nothing is recomputed beside it. Its tokens come from GPT.generate's own loop
(minigpt.generate), so they are the tokens generate picks with the same seed.

The trace also runs backward (unless target=None): by default from -log p(the next token it
chose), through the prompt pass's own graph, so the gradients explain that choice; or from a
token the caller names, or from the prompt's own continuation. It keeps d loss / d (every
stage's output), each parameter's gradient norm, gradient x input saliency per prompt token,
and a float64 finite-difference spot-check per stage: a few elements of that stage's output
are perturbed (the Recorder's ``overrides``) and the change in the loss is compared with the
gradient.
The model runs in eval mode (no dropout) during the trace; its training mode and any
gradients it held are restored afterwards.

The rooms: record.py (the records), tracer.py (``trace()``), stages.py (each stage's record
from a pass), gradients.py (backward and finite differences), report.py (text and JSON),
command.py (``minigpt trace``), and the page: html.py (its layout, the generated tokens, the
backward), panels.py (each stage's pictures and their shared scales), words.py (its
sentences and summary lines), figures.py (heatmaps, legends, bars, charts) and png.py
(heatmaps as inline palette PNGs).
"""
from .command import (block_graph, build_parser, fresh_model, main,  # noqa: F401
                      parse_args, write_trace_files)
from .record import STAGES, Backward, FDCheck, Stage, TokenTrace, stage_names  # noqa: F401
from .report import show  # noqa: F401
from .tracer import trace

__all__ = ["STAGES", "Stage", "FDCheck", "Backward", "TokenTrace", "trace", "block_graph",
           "fresh_model", "main"]
