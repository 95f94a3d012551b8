"""How the report words each kind of finding: one jinja snippet per kind, kept apart from the
analysis that decides which findings hold (``quantbench.report.findings``).

A snippet sees the finding's ``model`` and ``precision``, its ``numbers`` (figures read from
the summary table, or derived from it) and its ``names`` (other precisions, type lists). Causal
words ("goes to dequantizing", "bound by overhead", "fell back", "shared with other work")
belong only to kinds the analysis emits when the measurement that supports them holds.
"""

from __future__ import annotations

import numbers

import jinja2

from quantbench.report.numbers import fmt, md_escape, sci
from quantbench.stats import known as _known

# the headline point of a summary row, where the table has it
_HEADLINE = ("{% if prompt_tokens is known and batch_size is known %} at the headline point, "
             "prompt {{ prompt_tokens | fmt(0) }}, batch {{ batch_size | fmt(0) }}{% endif %}")

# the KL divergences and sizes of an importance-matrix pair
# (scientific notation: a file close to its model has divergences near 1e-4, which four
# decimals would show as 0)
_IMAT_TAIL = ("; mean KL divergence {{ kld_imat | sci }} against {{ kld_plain | sci }}"
              "{% if kld_change_ci_low is known %}, "
              "{% if kld_direction == 'higher' %}higher with the matrix"
              "{% elif kld_direction == 'lower' %}lower with the matrix"
              "{% else %}no clear difference{% endif %} (change [{{ kld_change_ci_low | sci }}, "
              "{{ kld_change_ci_high | sci }}]){% endif %}"
              "{% if disagree %}: perplexity and KL divergence disagree on this pair (KL "
              "divergence measures the distance from the unquantized model's predictions, "
              "perplexity only the actual next tokens){% endif %}; "
              "{{ size_bytes_imat | fmt(0) }} bytes against {{ size_bytes_plain | fmt(0) }}.")

# one compiled precision against its eager twin, with the MBU of both where measured
_COMPILED = ("{{ model }}: {{ precision }} decodes at {{ compiled_tok_s | fmt(1) }} tok/s, "
             "{{ speedup | fmt(2) }}× eager {{ eager }} ({{ eager_tok_s | fmt(1) }} tok/s) with "
             "the same weights")
_COMPILED_MBU = ("{% if eager_mbu_pct is known and compiled_mbu_pct is known %} "
                 "({{ eager_mbu_pct | fmt(1) }} % MBU eager, {{ compiled_mbu_pct | fmt(1) }} % "
                 "compiled){% endif %}")

# the batch sizes of a curve by state, each with its speed-up: "faster at batch 4 (1.10×);
# slower at batch 16 (0.85×) and 64 (0.73×)"
_GROUPS = ("{% for g in groups %}{{ g.state }} at batch {% for p in g.points %}"
           "{{ p.batch | fmt(0) }} ({{ p.speedup | fmt(2) }}×)"
           "{{ '' if loop.last else (' and ' if loop.revindex == 2 else ', ') }}{% endfor %}"
           "{{ '' if loop.last else '; ' }}{% endfor %}")

# what a trace says of a step its device was busy for under half of
_BUSY = ("{% if device == 'GPU' %}has the GPU busy only {{ busy_pct | fmt(0) }} % of a decode "
         "step{% else %}spends only {{ busy_pct | fmt(0) }} % of a decode step in torch "
         "operators{% endif %}")

# how many quantized precisions turn their byte saving into speed, and the one furthest off
_SAVING = ("{{ model }}: {{ kept | fmt(0) }} of {{ n | fmt(0) }} quantized precisions realise at "
           "least {{ realised_min | fmt(0) }} % of the speed-up their fewer bytes per token "
           "would give a bandwidth-bound decode; furthest off is {{ precision }}, which reads "
           "{{ bytes_ratio | fmt(2) }}× fewer bytes than {{ baseline }} ")

WORDING = {
    # -- hardware analysis --------------------------------------------------------------------
    "below_ridge": (
        "{{ model }}: decoding one token does at most {{ intensity | fmt(1) }} FLOP per byte read "
        "({{ precision }}), below this machine's ridge point of {{ ridge | fmt(0) }} FLOP/byte: "
        "by the roofline, the memory bandwidth and not the compute rate caps decode here; "
        "{{ best }} comes nearest that ceiling: {{ gb_s | fmt(1) }} GB/s, {{ mbu_pct | fmt(1) }} "
        "% MBU."
    ),
    "below_ridge_follows_bytes": (
        "{{ model }}: decoding one token does at most {{ intensity | fmt(1) }} FLOP per byte read "
        "({{ precision }}), below this machine's ridge point of {{ ridge | fmt(0) }} FLOP/byte: "
        "by the roofline, the memory bandwidth and not the compute rate caps decode here, and "
        "every quantized precision realises at least {{ realised_min | fmt(0) }} % of the "
        "speed-up its byte saving would give, so speed follows the bytes per token; "
        "{{ best }} comes nearest the bandwidth ceiling: {{ gb_s | fmt(1) }} GB/s, "
        "{{ mbu_pct | fmt(1) }} % MBU."
    ),
    "compiled_faster": (
        _COMPILED + ", their 95 % intervals apart: compiling removes {{ removed_pct | fmt(0) }} % "
        "of eager decode's time per token" + _COMPILED_MBU + "."
    ),
    "compiled_faster_host_bound": (
        _COMPILED + ", their 95 % intervals apart: compiling removes {{ removed_pct | fmt(0) }} % "
        "of eager decode's time per token" + _COMPILED_MBU + ". A trace of {{ eager }} at this "
        "point " + _BUSY + ": eager decode is bound by {{ host_work }}, not by memory."
    ),
    "compiled_not_faster": (
        _COMPILED + ": compiling does not make decode clearly faster here (clearly: at least "
        "{{ margin | fmt(2) }}× with the 95 % intervals apart)."
    ),
    "bytes_to_speed": (
        _SAVING + "{{ 'and' if speed_ratio >= 1 else 'yet' }} decodes {{ speed_ratio | fmt(2) }}× "
        "as fast{% if verdict != 'faster' %}, not told apart from it (the 95 % intervals "
        "overlap){% endif %}: {{ realised_pct | fmt(0) }} % of the speed-up its byte saving "
        "would give."
    ),
    "bytes_to_speed_slower": (
        _SAVING + "yet decodes slower, {{ speed_ratio | fmt(2) }}× as fast (the 95 % intervals "
        "apart): none of its byte saving became speed."
    ),
    "bytes_to_speed_slower_traced": (
        _SAVING + "yet decodes slower, {{ speed_ratio | fmt(2) }}× as fast (the 95 % intervals "
        "apart); its trace at this point shows where the time goes: "
        "{% if dequant_pct is known %}{{ dequant_pct | fmt(0) }} % of its {{ device }} time to "
        "dequantization and quantization {{ unit }}{% endif %}"
        "{% if dequant_pct is known and busy_pct is known %}, and {% endif %}"
        "{% if busy_pct is known %}" + _BUSY + ", the rest going to {{ host_work }}{% endif %}."
    ),
    # -- ONNX Runtime's int8 against the other engines' int8 ---------------------------------
    "int8_engines": (
        "{{ model }}, int8 on three engines: {{ precision }} (ONNX Runtime, dynamic int8) "
        "decodes at {{ tok_s | fmt(1) }} tok/s"
        "{% for o in others %}, {{ o.ratio | fmt(2) }}× {{ o.name }} ({{ o.tok_s | fmt(1) }} "
        "tok/s: {{ {'faster': 'faster', 'slower': 'slower', 'unclear': 'not told apart'}"
        "[o.verdict] }}){% endfor %}"
        "{% if quality %}; perplexity against {{ reference }}: {% for q in quality %}"
        "{{ q.name }} {{ q.ppl_delta_pct | signed }} %"
        "{% if q.kld_mean is known %} (KLD {{ q.kld_mean | fmt(4) }}){% endif %}"
        "{{ '' if loop.last else ', ' }}{% endfor %}"
        "{% else %}; their quality was not measured{% endif %}"
        " (faster or slower: the 95 % intervals apart)."
    ),
    # -- where decode time goes (kernel traces) -----------------------------------------------
    "kernels_largest_class": (
        "{{ model }}: {{ precision }} spends the largest share of its traced decode {{ device }} "
        "time, {{ pct | fmt(0) }} % of {{ busy_ms | fmt(2) }} ms a step, in {{ what }} {{ unit }}"
        "{% if top is string and top_pct is known %}; the top one, {{ top[:80] | md }}, takes "
        "{{ top_pct | fmt(0) }} %{% endif %}."
    ),
    "kernels_dequant": (
        "{{ model }}: {{ precision }} spends {{ pct | fmt(0) }} % of its decode {{ device }} time "
        "in dequantization and quantization {{ unit }}."
    ),
    "kernels_prefill": (
        "{{ model }}: {{ precision }}'s traced prefill of {{ batch_size | fmt(0) }} × "
        "{{ prompt_tokens | fmt(0) }} tokens{% if context_depth %} at depth "
        "{{ context_depth | fmt(0) }}{% endif %} takes {{ trace_ms | fmt(2) }} ms under the "
        "profiler, {{ busy_ms | fmt(2) }} ms of it in {{ device }} {{ unit }}; the largest "
        "share, {{ pct | fmt(0) }} %, in {{ what }} {{ unit }}"
        "{% if dequant_pct is known %}, {{ dequant_pct | fmt(0) }} % in dequantization and "
        "quantization{% endif %}."
    ),
    "kernels_host_bound": (
        "{{ model }}: {{ precision }}'s GPU is busy only {{ busy_pct | fmt(0) }} % of a traced "
        "decode step ({{ busy_ms_per_step | fmt(2) }} of {{ step_ms | fmt(2) }} ms; "
        "{{ kernels_per_token | fmt(0) }} kernels per token"
        "{% if launches_per_token is known %} from {{ launches_per_token | fmt(0) }} host "
        "launches{% endif %}): below {{ threshold | fmt_g }} %, the step waits on the host's "
        "Python, dispatch and kernel launches more than on the GPU."
    ),
    "kernels_graph_breaks": (
        "{{ model }}: {{ precision }}'s compiled decode has {{ breaks | fmt(0) }} graph "
        "break{{ '' if breaks == 1 else 's' }}{% if graphs is known %} "
        "({{ graphs | fmt(0) }} graphs){% endif %}: Python runs between the compiled pieces of "
        "each step{% if reason is string %} (first: {{ reason | md }}){% endif %}."
    ),
    "kernels_recompiles": (
        "{{ model }}: {{ precision }}'s decode was recompiled {{ recompiles | fmt(0) }} "
        "time{{ '' if recompiles == 1 else 's' }}"
        "{% if in_trace is known and in_trace > 0 %}, {{ in_trace | fmt(0) }} of them during the "
        "traced steps{% endif %}{% if reason is string %} (first: {{ reason | md }}){% endif %}."
    ),
    "kernels_cudagraph_skips": (
        "{{ model }}: {{ precision }}'s compiled decode skipped CUDA graphs "
        "{{ skips | fmt(0) }} time{{ '' if skips == 1 else 's' }}: those graphs launch their "
        "kernels one by one."
    ),
    "kernels_one_graph": (
        "{{ model }}: {{ precision }}'s compiled decode has no graph breaks and was not "
        "recompiled{% if graphs is known %} ({{ graphs | fmt(0) }} "
        "graph{{ '' if graphs == 1 else 's' }}){% endif %}."
    ),
    # -- each format on its fastest path against the unquantized fast path ---------------------
    "fast_path_faster": (
        "{{ model }}, each format on its fastest path: {{ formats | paths }} "
        "decode{{ 's' if formats | length == 1 else '' }} faster than {{ baseline }} "
        "({{ baseline_tok_s | fmt(1) }} tok/s" + _HEADLINE + "), the 95 % intervals apart."
    ),
    "fast_path_slower": (
        "{{ model }}, each format on its fastest path: {{ formats | paths }} "
        "decode{{ 's' if formats | length == 1 else '' }} slower than {{ baseline }} "
        "({{ baseline_tok_s | fmt(1) }} tok/s" + _HEADLINE + "), the 95 % intervals apart."
    ),
    "fast_path_unclear": (
        "{{ model }}, each format on its fastest path: {{ formats | paths }} "
        "{{ 'is' if formats | length == 1 else 'are' }} not told apart from {{ baseline }} "
        "({{ baseline_tok_s | fmt(1) }} tok/s" + _HEADLINE + "): the 95 % intervals overlap."
    ),
    # -- anomalies ----------------------------------------------------------------------------
    "slower_than_baseline": (
        "{{ model }}: {{ precision }} "
        "{{ 'decodes slower than' if resolved else 'is no faster than' }} its baseline "
        "{{ baseline }} ({{ tok_s | fmt(1) }} against {{ baseline_tok_s | fmt(1) }} tok/s, "
        "{{ speed_ratio | fmt(2) }}×{{ '' if resolved else ', not told apart: the 95 % "
        "intervals overlap' }}) although its weights are {{ size_ratio | fmt(1) }}× smaller"
        "{% if split in ('all', 'part') %}; without outlier decomposition ({{ t0 }}) it runs at "
        "{{ t0_tok_s | fmt(1) }} tok/s, so the LLM.int8 split into an int8 and an fp16 matmul "
        "explains {{ split }} of the loss"
        "{% elif split == 'none' %}; without outlier decomposition ({{ t0 }}) it runs at "
        "{{ t0_tok_s | fmt(1) }} tok/s, no faster, so the LLM.int8 split into an int8 and an "
        "fp16 matmul does not explain the loss"
        "{% elif split == 'unmeasured' %}; run {{ t0 }} as well (no outlier decomposition) to "
        "measure how much of this the LLM.int8 split into an int8 and an fp16 matmul explains"
        "{% endif %}."
    ),
    "ppl_jump": (
        "{{ model }}: {{ precision }} loses {{ ppl_delta_pct | signed }} % perplexity against "
        "{{ reference }}, beyond the {{ ppl_jump_pct | fmt_g }} % expected of these formats "
        "(report.ppl_jump_pct)."
    ),
    "out_of_line_with_size": (
        "{{ model }}: {{ precision }} ({{ size_mib | fmt(1) }} MiB) loses "
        "{{ ppl_delta_pct | signed }} % perplexity, more than the smaller {{ smaller }} "
        "({{ smaller_size_mib | fmt(1) }} MiB, {{ smaller_ppl_delta_pct | signed }} %): a "
        "perplexity jump out of line with its size."
    ),
    "noisy_timings": (
        "{% if points %}{{ model }}: {{ precision }}'s decode timings are noisy at "
        "{{ n_noisy | fmt(0) }} of its {{ n_points | fmt(0) }} operating points: coefficient "
        "of variation across runs {{ points }} (above {{ cv_threshold_pct | fmt_g }} %); "
        "compare them with care."
        "{% else %}{{ model }}: {{ precision }}'s decode timings are noisy: coefficient of "
        "variation {{ cv_pct | fmt(1) }} % across runs (above {{ cv_threshold_pct | fmt_g }} %);"
        " compare it with care.{% endif %}"
    ),
    "named_type_low": (
        "{{ model }}: {{ precision }} holds only {{ named_type_pct | fmt(1) }} % of its weights in "
        "the type it is named after ({{ weight_types }})"
        "{% if misaligned_rows_pct is known and misaligned_rows_pct > 0 %}: "
        "{{ misaligned_rows_pct | fmt(1) }} % of its weights are in matrices whose rows are not "
        "multiples of {{ row_block | fmt(0) }}, which llama.cpp cannot store in that type and "
        "puts in others"
        "{% elif misaligned_rows_pct is known %}; every matrix's rows are multiples of "
        "{{ row_block | fmt(0) }}, so row widths do not explain it: the other types are "
        "llama.cpp's choices for this file type"
        "{% endif %}; its size and quality are those of this mix, not of the named type alone."
    ),
    "partly_quantised": (
        "{{ model }}: {{ precision }} quantised {{ quantised | fmt(0) }} of the model's "
        "{{ n | fmt(0) }} linear layers ({{ pct | fmt(0) }} %); torchao leaves a layer whose "
        "shape its format does not take unquantised, so its size, speed and quality are mostly "
        "those of the unquantised layers, not of the format."
    ),
    # -- operating points (quantbench.report.operating) ---------------------------------------
    "step_time_falls": (
        "{{ model }}: {{ precision }}'s decode step took less time at batch "
        "{{ batch_large | fmt(0) }} than at batch {{ batch_small | fmt(0) }} ("
        "{{ ms_large | fmt(1) }} against {{ ms_small | fmt(1) }} ms, {{ ratio | fmt(2) }}×; "
        "prompt {{ prompt_tokens | fmt(0) }}, depth {{ context_depth | fmt(0) }}), the 95 % "
        "intervals apart{% if n_contexts > 1 %}, and a larger batch stepped faster than a "
        "smaller one at {{ n_contexts | fmt(0) }} of its {{ contexts | fmt(0) }} contexts"
        "{% endif %}. A step over more sequences does no less work, so something other than "
        "the work set its time there (no trace of these points says what): compare this "
        "precision across batch sizes, and read the crossovers that rest on it, with care."
    ),
    "crossover_everywhere": (
        "{{ model }}: {{ precision }} decodes faster than {{ baseline }} at every measured batch "
        "size ({{ batch_min | fmt(0) }} to {{ batch_max | fmt(0) }}, {{ n | fmt(0) }} sizes; "
        "prompt {{ prompt_tokens | fmt(0) }}, depth {{ context_depth | fmt(0) }}), the 95 % "
        "intervals apart: {{ speedup_first | fmt(2) }}× at batch {{ batch_min | fmt(0) }}, "
        "{{ speedup_last | fmt(2) }}× at batch {{ batch_max | fmt(0) }}."
    ),
    "crossover_never": (
        "{{ model }}: {{ precision }} is never clearly faster than {{ baseline }} at the measured "
        "batch "
        "sizes ({{ batch_min | fmt(0) }} to {{ batch_max | fmt(0) }}; prompt "
        "{{ prompt_tokens | fmt(0) }}, depth {{ context_depth | fmt(0) }}): "
        "{% if n_slower %}slower at {{ n_slower | fmt(0) }}{% endif %}"
        "{% if n_slower and n_unclear %} and {% endif %}"
        "{% if n_unclear %}a tie (95 % intervals overlap"
        "{% if n_no_interval %} or are unavailable{% endif %}) at "
        "{{ n_unclear | fmt(0) }}{% endif %} of {{ n | fmt(0) }} sizes; "
        "{{ speedup_first | fmt(2) }}× at "
        "batch {{ batch_min | fmt(0) }}, {{ speedup_last | fmt(2) }}× at batch "
        "{{ batch_max | fmt(0) }}."
    ),
    "crossover_switch": (
        "{{ model }}: {{ precision }} against {{ baseline }} (prompt {{ prompt_tokens | fmt(0) }}, "
        "depth {{ context_depth | fmt(0) }}): "
        "{% set upto = 'at batch' if up_to == batch_min else 'up to batch' %}"
        "{% set rest = 'slower' if other == 'slower' else 'a tie' %}"
        "{% if direction == 'down' %}faster {{ upto }} {{ up_to | fmt(0) }}, "
        "{% if other == 'mixed' %}then " + _GROUPS + "{% else %}{{ rest }} from batch "
        "{{ from_batch | fmt(0) }}{% endif %}"
        "{% else %}{% if other == 'mixed' %}" + _GROUPS + "; {% else %}{{ rest }} {{ upto }} "
        "{{ up_to | fmt(0) }}, {% endif %}faster from batch {{ from_batch | fmt(0) }}{% endif %} "
        "(95 % intervals; {{ speedup_first | fmt(2) }}× at batch {{ batch_min | fmt(0) }}, "
        "{{ speedup_last | fmt(2) }}× at batch {{ batch_max | fmt(0) }})."
    ),
    "crossover_mixed": (
        "{{ model }}: {{ precision }} against {{ baseline }} (prompt {{ prompt_tokens | fmt(0) }}, "
        "depth {{ context_depth | fmt(0) }}): no single crossover over batch "
        "{{ batch_min | fmt(0) }} to {{ batch_max | fmt(0) }}: " + _GROUPS + " (95 % intervals)."
    ),
    "compute_bound_reached": (
        "{{ model }}: {{ precision }}'s decode turns compute-bound from about batch "
        "{{ ridge_batch | fmt(1) }} at prompt {{ prompt_tokens | fmt(0) }}, depth "
        "{{ context_depth | fmt(0) }}: measured at batch {{ batch | fmt(0) }} it does "
        "{{ intensity | fmt(1) }} FLOP per byte read, at or above the ridge point of "
        "{{ ridge | fmt(0) }} FLOP/byte (peak matmul rate / peak bandwidth, results/machine.json)."
    ),
    "compute_bound_not_reached": (
        "{{ model }}: {{ precision }}'s decode stays memory-bound in the measured range: at most "
        "{{ intensity | fmt(1) }} FLOP per byte read (batch {{ batch | fmt(0) }}, prompt "
        "{{ prompt_tokens | fmt(0) }}, depth {{ context_depth | fmt(0) }}), below the ridge "
        "point of {{ ridge | fmt(0) }} FLOP/byte; "
        "{% if never %}no batch size reaches it at this context, since each sequence's KV "
        "cache reads grow with the batch as fast as its FLOPs"
        "{% else %}by the roofline it would take batch {{ ridge_batch | fmt(1) }} (largest "
        "measured: {{ batch_max | fmt(0) }}){% endif %}."
    ),
    "capacity": (
        "{{ model }}: {{ precision }} holds {{ fixed_mib | fmt(0) }} MiB fixed plus "
        "{{ per_token_kib | fmt(1) }} KiB per token in the KV caches (least squares over "
        "{{ n_points | fmt(0) }} points, {{ tokens_min | fmt(0) }} to {{ tokens_max | fmt(0) }} "
        "tokens{% if expected_kib is known %}; the model's shape predicts "
        "{{ expected_kib | fmt(1) }} KiB{% endif %}): {{ max_sequences | fmt(0) }} "
        "sequence{{ '' if max_sequences == 1 else 's' }} of "
        "{{ context_tokens | fmt(0) }} tokens fit in the {{ device_mib | fmt(0) }} MiB of "
        "{{ memory }}{% if extrapolated %} (extrapolated beyond the measured range){% endif %}."
    ),
    "capacity_no_slope": (
        "{{ model }}: {{ precision }}'s memory does not grow measurably with the tokens in its KV "
        "caches over the measured range ({{ tokens_min | fmt(0) }} to {{ tokens_max | fmt(0) }} "
        "tokens: {{ fixed_mib | fmt(0) }} MiB and {{ per_token_kib | fmt(2) }} KiB per token by "
        "least squares), so these points do not say how many sequences fit (an engine that "
        "reserves its cache when it loads looks so; the KV cache MiB column shows it where the "
        "engine reports it)."
    ),
    "capacity_no_device": (
        "{{ model }}: {{ precision }} holds {{ fixed_mib | fmt(0) }} MiB fixed plus "
        "{{ per_token_kib | fmt(1) }} KiB per token in the KV caches (least squares over "
        "{{ n_points | fmt(0) }} points, {{ tokens_min | fmt(0) }} to {{ tokens_max | fmt(0) }} "
        "tokens); the device's total memory is unavailable (not in results/machine.json), so "
        "how many sequences fit is not computed."
    ),
    "prices": (
        "Costs use the configured prices: "
        "{% if gpu_hour_cost is known %}{{ gpu_hour_cost | fmt_g }} per device-hour "
        "(report.gpu_hour_cost){% else %}no device-hour price (report.gpu_hour_cost unset)"
        "{% endif %} and {% if energy_cost_per_kwh is known %}{{ energy_cost_per_kwh | fmt_g }} "
        "per kWh (report.energy_cost_per_kwh){% else %}no energy price "
        "(report.energy_cost_per_kwh unset){% endif %}, in the currency they are given in."
    ),
    "unpriced": (
        "Not priced: neither report.gpu_hour_cost nor report.energy_cost_per_kwh is set, so no "
        "cost per token is given."
    ),
    "least_energy": (
        "{{ model }}: the least energy per decoded token (the decode steps alone) is "
        "{{ precision }}'s {{ decode_j_per_tok | fmt(3) }} J at batch {{ batch_size | fmt(0) }} "
        "(prompt {{ prompt_tokens | fmt(0) }}, depth {{ context_depth | fmt(0) }})."
    ),
    "least_energy_headline": (
        "{{ model }}: least energy per decoded token at the headline point (the decode steps "
        "alone): {{ precision }}, {{ decode_j_per_tok | fmt(3) }} J"
        "{% if tied %} (as low as shown: {{ tied }}){% endif %}"
        "{% if ratio is known %}, {{ ratio | fmt(1) }}× less than {{ reference }}'s "
        "{{ reference_j | fmt(3) }} J{% endif %}."
    ),
    "no_energy": (
        "{{ model }}: no energy per decoded token{{ where }} for "
        "{% if unmeasured %}{{ unmeasured }} (no energy per phase in {{ 'its' if n_unmeasured == 1 "
        "else 'their' }} latency record{{ '' if n_unmeasured == 1 else 's' }}: made before the "
        "phases were measured apart, with latency.energy_s off, or on a card without an "
        "energy counter){% if over_limit %}, nor {% endif %}{% endif %}"
        "{% if over_limit %}{{ over_limit }} (J/token × tok/s above the card's power limit: a "
        "measurement error, left out){% endif %}."
    ),
    "energy_over_limit": (
        "{{ model }}: energy left out at {{ n | fmt(0) }} point{{ '' if n == 1 else 's' }} whose "
        "J/token × tok/s is above the card's power limit of {{ limit_w | fmt(0) }} W, a "
        "measurement error: {{ points }}."
    ),
    "energy_basis": (
        "{{ model }}: every energy figure is the whole card's, from its energy counter, each "
        "phase apart; "
        "{% if idle_w is known %}it draws {{ idle_w | fmt(0) }} W idle with the model loaded"
        "{% if n > 1 %} (the median of {{ n | fmt(0) }} GPU traces, {{ idle_min | fmt(0) }} to "
        "{{ idle_max | fmt(0) }} W){% endif %}, and that draw is in every figure"
        "{% else %}its idle draw was not measured (no GPU trace of this model){% endif %}"
        "{% if limit_w is known %}; its power limit is {{ limit_w | fmt(0) }} W{% endif %}."
    ),
    "cheapest_point": (
        "{{ model }}: the cheapest million decoded tokens is {{ precision }} at batch "
        "{{ batch_size | fmt(0) }} (prompt {{ prompt_tokens | fmt(0) }}, depth "
        "{{ context_depth | fmt(0) }}): {{ cost_per_mtok | fmt(4) }}"
        "{% if device_cost_per_mtok is known and energy_cost_per_mtok is known %} "
        "({{ device_cost_per_mtok | fmt(4) }} device time + {{ energy_cost_per_mtok | fmt(4) }} "
        "decode energy){% elif device_cost_per_mtok is known %} of device time{% else %} of "
        "decode energy{% endif %}."
    ),
    "ops_single_user": (
        "{{ model }}, single user (batch 1, prompt {{ prompt_tokens | fmt(0) }}, depth "
        "{{ context_depth | fmt(0) }}): {{ precision }} — {{ per_seq_tok_s | fmt(1) }} tok/s"
        "{% if quality_known %}, the fastest within {{ quality }}"
        "{% else %}, the fastest by speed alone (quality was not measured){% endif %}."
    ),
    "ops_serving": (
        "{{ model }}, serving within a per-token latency of {{ budget_ms | fmt_g }} ms (p90): "
        "{{ precision }} at batch {{ batch_size | fmt(0) }} (prompt {{ prompt_tokens | fmt(0) }}, "
        "depth {{ context_depth | fmt(0) }}) — {{ decode_tok_s | fmt(1) }} tok/s in all, "
        "{{ per_seq_tok_s | fmt(1) }} per sequence, p90 {{ token_ms_p90 | fmt(1) }} ms"
        "{% if quality_known %}; within {{ quality }}"
        "{% else %}; by speed alone (quality was not measured){% endif %}."
    ),
    "ops_max_throughput": (
        "{{ model }}, maximum throughput "
        "{% if limit_from == 'budget' %}within {{ limit_mib | fmt(0) }} MiB "
        "(report.memory_budget_mib){% elif limit_from == 'device' %}within the device's "
        "{{ limit_mib | fmt(0) }} MiB{% else %}among the points that ran{% endif %}: "
        "{{ precision }} at batch {{ batch_size | fmt(0) }} (prompt {{ prompt_tokens | fmt(0) }}, "
        "depth {{ context_depth | fmt(0) }}) — {{ decode_tok_s | fmt(1) }} tok/s, "
        "{{ peak_mem_mib | fmt(0) }} MiB peak, p90 {{ token_ms_p90 | fmt(1) }} ms per token"
        "{% if quality_known %}; within {{ quality }}"
        "{% else %}; by speed alone (quality was not measured){% endif %}."
    ),
    "ops_none": (
        "{{ model }}, {{ scenario }}: no measured point qualifies — "
        "{% if why == 'quality' %}no precision is within {{ quality }}"
        "{% elif why == 'batch1' %}no precision within the quality budget was measured at "
        "batch 1{% elif why == 'latency' %}none within the quality budget has a p90 per-token "
        "latency within {{ budget_ms | fmt_g }} ms"
        "{% if precision is string %}; the lowest measured is {{ precision }}'s "
        "{{ token_ms_p90 | fmt(1) }} ms at batch {{ batch_size | fmt(0) }} (prompt "
        "{{ prompt_tokens | fmt(0) }}, depth {{ context_depth | fmt(0) }}){% endif %}"
        "{% else %}none within the quality budget fits the memory limit{% endif %}."
    ),
    # -- limitations --------------------------------------------------------------------------
    "timing_spread": (
        "Timings are from device `{{ device }}`: the decode coefficient of variation is "
        "{{ cv_median_pct | fmt(1) }} % in the median and {{ cv_max_pct | fmt(1) }} % at worst "
        "({{ precision }})."
    ),
    "machine_shared": (
        "Timings are from a machine shared with other work: while {{ precision }} was measured, "
        "other processes used {{ other_cpu_pct | fmt(1) }} % of the machine's CPU time"
        "{% if steal_pct is known and steal_pct > 0 %} and the hypervisor took "
        "{{ steal_pct | fmt(1) }} % (steal){% endif %}, load average {{ loadavg | fmt(2) }} "
        "(above {{ other_cpu_max_pct | fmt(0) }} % other CPU or {{ steal_max_pct | fmt(0) }} % "
        "steal){% if others %}, and above those while {{ others | join(', ') }} "
        "{{ 'was' if others | length == 1 else 'were' }} measured{% endif %}; such work "
        "slows and spreads the timings, so small differences between precisions may not hold "
        "on an idle machine."
    ),
    # -- importance matrix A/B ------------------------------------------------------------------
    "imatrix_lowered_ppl": (
        "{{ model }}: the importance matrix (calibration {{ calibration }}) lowered perplexity: "
        "{{ precision }} against {{ plain }}, {{ ppl_change_pct | fmt(2) }} % "
        "[{{ ppl_change_pct_ci_low | fmt(2) }}, {{ ppl_change_pct_ci_high | fmt(2) }}] "
        "(paired over {{ n_windows | fmt(0) }} windows)" + _IMAT_TAIL
    ),
    "imatrix_raised_ppl": (
        "{{ model }}: the importance matrix (calibration {{ calibration }}) raised perplexity: "
        "{{ precision }} against {{ plain }}, {{ ppl_change_pct | fmt(2) }} % "
        "[{{ ppl_change_pct_ci_low | fmt(2) }}, {{ ppl_change_pct_ci_high | fmt(2) }}] "
        "(paired over {{ n_windows | fmt(0) }} windows)" + _IMAT_TAIL
    ),
    "imatrix_no_clear_difference": (
        "{{ model }}: no clear difference in perplexity from the importance matrix (calibration "
        "{{ calibration }}): {{ precision }} against {{ plain }}, {{ ppl_change_pct | fmt(2) }} % "
        "[{{ ppl_change_pct_ci_low | fmt(2) }}, {{ ppl_change_pct_ci_high | fmt(2) }}], an "
        "interval that holds 0 (paired over {{ n_windows | fmt(0) }} windows)" + _IMAT_TAIL
    ),
    "imatrix_no_interval": (
        "{{ model }}: {{ precision }} against {{ plain }} (calibration {{ calibration }}): "
        "{{ ppl_change_pct | fmt(2) }} % in perplexity over {{ n_windows | fmt(0) }} windows, "
        "too few for an interval, so this run does not say whether the importance matrix "
        "helped" + _IMAT_TAIL
    ),
    "layout_twins_apart": (
        "{{ model }}: {{ precision }} and {{ other }} hold the same tensor types and sizes and "
        "run with the same settings (their values differ, not the work), yet decode at "
        "{{ decode_tok_s_fast | fmt(1) }} [{{ decode_tok_s_ci_low_fast | fmt(1) }}, "
        "{{ decode_tok_s_ci_high_fast | fmt(1) }}] and {{ decode_tok_s_slow | fmt(1) }} "
        "[{{ decode_tok_s_ci_low_slow | fmt(1) }}, {{ decode_tok_s_ci_high_slow | fmt(1) }}] "
        "tok/s, intervals apart ({{ ratio | fmt(2) }}×): between jobs the speed moved more "
        "than the intervals over processes show, so a difference between precisions of that "
        "size may come from when each was measured, not from its format."
    ),
    "machine_quiet": (
        "Other work on the machine while the timings were taken: at most "
        "{{ other_cpu_pct | fmt(1) }} % of its CPU time went to other processes "
        "({{ precision }}){% if steal_pct is known %} and at most {{ steal_pct | fmt(1) }} % "
        "to steal{% endif %}."
    ),
    # -- KV-cache types (llama.cpp) -----------------------------------------------------------
    "kv_cache_tradeoff": (
        "{{ model }}: {{ precision }} ({{ types }} KV cache) holds "
        "{{ kv_bytes_per_token | fmt(0) }} bytes per token of context against "
        "{{ twin_kv_bytes_per_token | fmt(0) }} for {{ twin }} (the same weights, f16 KV): "
        "{{ saved_bytes_per_token | fmt(0) }} bytes ({{ saved_pct | fmt(0) }} %) saved per "
        "token, {{ saved_mib_per_1k | fmt(2) }} MiB per 1,024 tokens; the quality lost: "
        "perplexity {{ ppl_delta_pct | signed }} % "
        "[95 % CI {{ ppl_ci_low | signed }}, {{ ppl_ci_high | signed }}] against {{ twin }}, "
        "the interval apart from zero{% if kld_mean is known %}, mean KL divergence "
        "{{ '%.2e' | format(kld_mean) }}{% endif %}."
    ),
    "kv_cache_no_clear_loss": (
        "{{ model }}: {{ precision }} ({{ types }} KV cache) holds "
        "{{ kv_bytes_per_token | fmt(0) }} bytes per token of context against "
        "{{ twin_kv_bytes_per_token | fmt(0) }} for {{ twin }} (the same weights, f16 KV): "
        "{{ saved_bytes_per_token | fmt(0) }} bytes ({{ saved_pct | fmt(0) }} %) saved per "
        "token, {{ saved_mib_per_1k | fmt(2) }} MiB per 1,024 tokens; no quality loss is told "
        "apart from zero: perplexity {{ ppl_delta_pct | signed }} % "
        "[95 % CI {{ ppl_ci_low | signed }}, {{ ppl_ci_high | signed }}] against {{ twin }}"
        "{% if kld_mean is known %}, mean KL divergence "
        "{{ '%.2e' | format(kld_mean) }}{% endif %}."
    ),
    "kv_cache_no_saving": (
        "{{ model }}: {{ precision }} ({{ types }} KV cache) was measured at "
        "{{ kv_bytes_per_token | fmt(0) }} bytes per token of context, no fewer than "
        "{{ twin_kv_bytes_per_token | fmt(0) }} for {{ twin }} (f16 KV): it saves no memory here."
    ),
}




def _paths(formats: list[dict]) -> str:
    """Formats on their fastest paths: ``name (path) tok/s, ratio×`` each, the path named only
    when it is not the format's own precision."""

    return ", ".join(
        f"{f['format']}{'' if f['path'] == f['format'] else ' as ' + f['path']} "
        f"({fmt(f['tok_s'], 1)} tok/s, {fmt(f['ratio'], 2)}×)" for f in formats)


def _env() -> jinja2.Environment:

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = fmt
    env.filters["paths"] = _paths
    env.filters["signed"] = lambda v: f"{v:+.2f}"
    env.filters["fmt_g"] = lambda v: f"{v:g}"
    env.filters["md"] = md_escape
    env.filters["sci"] = sci
    env.tests["known"] = _known
    return env


_TEMPLATES: dict[str, jinja2.Template] = {}


def say(finding) -> str:
    """The sentence of one finding (``analysis.Finding``)."""
    if finding.kind not in _TEMPLATES:
        _TEMPLATES[finding.kind] = _env().from_string(WORDING[finding.kind])
    return _TEMPLATES[finding.kind].render(
        model=finding.model, precision=finding.precision,
        **{k: (float(v) if isinstance(v, numbers.Real) else v)
           for k, v in finding.numbers.items()},
        **finding.names)
