"""`zoo-jax list | info | train | evaluate | bench`.

Every user error (a `ZooError`, a bad flag, the file system's refusal, a device out of
memory: `errors.user_message`) prints one line on stderr and exits 2; a traceback means a
bug in zoo_jax.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import os
import sys
import time

import jax
import jax.numpy as jnp

from zoo_jax import __version__, activations, learners, losses, optim, registry
from zoo_jax.bench import INPUTS, LOWERINGS, PEERS, bench
from zoo_jax.errors import ArgumentParser, ZooError, report, report_interrupt
from zoo_jax.train import distributed
from zoo_jax.train.loop import RunConfig, evaluate_run, fit
from zoo_jax.train.run import check_build


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _columns(rows: list[list[str]], right: set[int] = frozenset()) -> list[str]:
    """Rows of cells as aligned text columns (each as wide as its widest cell)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    pad = lambda i, cell: cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
    return ["  ".join(pad(i, c) for i, c in enumerate(r)).rstrip() for r in rows]


def models_table(fmt: str) -> str:
    params = registry.count_every_card(announce=_stderr)
    rows = [
        {
            "name": card.name,
            "family": card.family,
            "chart_node": card.chart_node,
            "params": params[card.name],
            "reference": card.reference,
        }
        for card in (registry.get_card(n) for n in registry.list_models())
    ]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "markdown":
        lines = [
            "| model | family | chart node | parameters | reference |",
            "|---|---|---|---:|---|",
        ]
        lines += [
            f"| `{r['name']}` | {r['family']} | `{r['chart_node']}` | {r['params']:,} | {r['reference']} |"
            for r in rows
        ]
        return "\n".join(lines)
    cells = [["name", "family", "params", "reference"]]
    cells += [[r["name"], r["family"], f"{r['params']:,}", r["reference"]] for r in rows]
    return "\n".join(_columns(cells, right={2}))


def catalogue(kind: str) -> list[dict]:
    """The optimizers, losses, schedules or activations, one dict per entry."""
    if kind == "optimizers":
        return optim.describe()
    if kind == "losses":
        return losses.describe()
    if kind == "schedules":
        return [
            {"name": name, "options": _defaults_of(fn, skip=1)}
            for name, fn in optim.SCHEDULES.items()
        ]
    return [
        {"name": name, "learnable": name in activations.LEARNABLE} for name in activations.NAMES
    ]


def _defaults_of(fn, skip: int = 0) -> dict:
    params = list(inspect.signature(fn).parameters.values())[skip:]
    return {p.name: None if p.default is p.empty else p.default for p in params}


def chart_table() -> list[dict]:
    """The zoo chart's nodes (van Veen's "Neural Network Zoo", Asimov Institute 2016), each with the registered models that implement it."""
    built: dict[str, list[str]] = {}
    for name in registry.list_models():
        built.setdefault(registry.get_card(name).chart_node, []).append(name)
    return [
        {"family": family, "chart_node": node, "models": built.get(node, [])}
        for family, nodes in registry.CHART_NODES.items()
        for node in nodes
    ]


def cmd_list(args) -> None:
    kinds = [k for k in ("optimizers", "losses", "schedules", "activations") if getattr(args, k)]
    if args.chart:
        rows = chart_table()
        if args.json:
            print(json.dumps(rows, indent=2))
            return
        done = sum(bool(r["models"]) for r in rows)
        cells = [[r["family"], r["chart_node"], ", ".join(r["models"]) or "-"] for r in rows]
        print("\n".join(_columns(cells)))
        print(f"{done} of {len(rows)} chart nodes have a model")
        return
    if not kinds:
        print(models_table("json" if args.json else "markdown" if args.markdown else "text"))
        return
    for kind in kinds:
        rows = catalogue(kind)
        if args.json:
            print(json.dumps(rows, indent=2))
            continue
        print("\n".join(_columns([[row["name"], _describe(row)] for row in rows])))
        if kind == "optimizers":
            print(f"{'(every optimizer)':<32} {', '.join(optim.COMMON_OPTIONS)}")


def _describe(row: dict) -> str:
    """`key=value` pairs of a catalogue row; `defaults` / `options` dicts are spread out."""
    parts = []
    for key, value in row.items():
        if key == "name" or value in ([], {}):
            continue
        if key in ("defaults", "options"):
            parts += [f"{k}={v}" for k, v in value.items()]
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def cmd_info(args) -> None:
    card = registry.get_card(args.name)
    model = registry.get_model(args.name)
    fields = {
        f.name: getattr(card, f.name)
        for f in dataclasses.fields(card)
        if f.name not in ("build", "test_overrides", "param_convention")
    }
    count = registry.count_params(args.name)
    x = jnp.zeros((1, *card.input_shape), jnp.int32 if card.input_kind == "tokens" else jnp.float32)
    inputs = learners.get(card.learner).model_args(x)  # what the card's learner feeds it
    flops = _forward_flops(model, inputs) if args.flops or args.json else None
    if args.json:
        print(json.dumps({**fields, "params": count, "param_convention": card.param_convention,
                          "forward_flops_per_example": flops}, default=str, indent=2))  # fmt: skip
        return
    fields["params"] = (
        f"{count:,} ({card.param_convention}, at input_shape; the table's total also counts "
        "non-trainable state such as BatchNorm statistics)"
    )
    if flops is not None:
        fields["forward FLOPs"] = f"{flops:,.0f} per example (XLA's cost analysis)"
    print("\n".join(_columns([[f"{k}:", str(v)] for k, v in fields.items()], right={0})))
    with _thousands_in_tables():
        table = model.tabulate(
            jax.random.PRNGKey(0),
            *inputs,
            compute_flops=args.flops,
            console_kwargs={"width": 120, "force_terminal": sys.stdout.isatty()},
        )
    print(table)


@contextlib.contextmanager
def _thousands_in_tables():
    """Flax's table prints the FLOPs cells as bare integers; while it renders, its cell
    formatter writes integers with thousands separators (shapes are not integers there).
    A flax without that private hook keeps its own format."""
    from flax.linen import summary

    render = getattr(summary, "_maybe_render", None)
    if render is None:
        yield
        return
    summary._maybe_render = lambda x: (
        f"{x:,}" if isinstance(x, int) and not isinstance(x, bool) else render(x)
    )
    try:
        yield
    finally:
        summary._maybe_render = render


def _forward_flops(model, inputs) -> float | None:
    """FLOPs of one forward pass on one example, by XLA's cost analysis of the compiled call."""
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs)
    compiled = jax.jit(model.apply).lower(variables, *inputs).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


def _json_pairs(items: list[str] | None, flag: str, example: str) -> dict:
    """`KEY=JSON` arguments as a dict; JSON lists become tuples (hashable model fields)."""
    pairs = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise json.JSONDecodeError("no '='", item, 0)
            pairs[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ZooError(f"{flag} {item!r}: value must be JSON (e.g. {example})") from None
        if isinstance(pairs[key], list):
            pairs[key] = tuple(pairs[key])
    return pairs


def _run_config(args, model: str | None = None):
    overrides = _json_pairs(args.set, "--set", "dropout=0.4, hidden=[512,512]")
    options = _json_pairs(args.opt, "--opt", "momentum=0.9, amsgrad=true")
    for key in ("weight_decay", "max_norm", "clipnorm"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    loss_options = _json_pairs(args.loss_opt, "--loss-opt", "label_smoothing=0.1")
    schedule_options = _json_pairs(args.schedule_opt, "--schedule-opt", "decay_rate=0.5")
    return RunConfig(
        model=model or args.model,
        dataset=args.dataset,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        loss=args.loss,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        l1=args.l1,
        l2=args.l2,
        optimizer_options=options,
        loss_options=loss_options,
        schedule=args.schedule,
        schedule_options={
            k: list(v) if isinstance(v, tuple) else v for k, v in schedule_options.items()
        },
        model_overrides=overrides,
        augment=args.augment,
        devices=args.devices,
        parallel=args.parallel,
        nan_policy=args.nan_policy,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        data_dir=args.data_dir,
        keep_checkpoints=args.keep_checkpoints,
        patience=args.patience,
        min_delta=args.min_delta,
        dtype=args.dtype,
    )


def _new_run_dir(model: str) -> str:
    """`runs/MODEL-TIME`, made here: a second run started in the same second gets `-2`."""
    base = f"runs/{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        path = base if n == 1 else f"{base}-{n}"
        try:
            os.makedirs(path)
        except FileExistsError:
            continue
        return path
    raise ZooError(f"{base}: a thousand runs started this second; name one with --run-dir")


def _resumed_config(args) -> RunConfig:
    """The run's own `config.json`, with the flags given on this command line over it (a
    flag that differs from what the checkpoint was trained with is then refused by `fit`)."""
    config_file = os.path.join(args.run_dir, "config.json")
    try:
        with open(config_file) as f:
            saved = json.load(f)
        base = RunConfig(**saved)
    except FileNotFoundError:
        raise ZooError(
            f"--resume: {args.run_dir} is not a run directory (no config.json)"
        ) from None
    except (OSError, ValueError, TypeError) as err:
        raise ZooError(f"--resume: {config_file} cannot be read ({err})") from None
    base.model_overrides = {
        k: tuple(v) if isinstance(v, list) else v for k, v in base.model_overrides.items()
    }
    given = _run_config(args, model=base.model)
    defaults = _run_config(build_parser().parse_args(["train", "--model", base.model]))
    changed = {
        f.name: getattr(given, f.name)
        for f in dataclasses.fields(RunConfig)
        if getattr(given, f.name) != getattr(defaults, f.name)
    }
    for key, value in changed.items():  # options given now add to (or change) the saved ones
        if isinstance(value, dict):
            changed[key] = {**getattr(base, key), **value}
    if args.model and args.model != base.model:
        changed["model"] = args.model
    return dataclasses.replace(base, **changed)


def cmd_train(args) -> None:
    # before anything touches a device: a multi-process run's processes find each other
    processes = distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    if processes > 1 and not args.run_dir:  # runs/MODEL-TIME would differ between hosts
        raise ZooError(f"a run of {processes} processes needs --run-dir, the same for all")
    if args.run_dir == "":
        raise ZooError("--run-dir is empty: name a directory, or leave it out for runs/MODEL-TIME")
    if args.resume:
        if not args.run_dir:  # else a new, empty, timestamped directory
            raise ZooError("--resume continues the run in --run-dir: name it")
        cfg = _resumed_config(args)
        run_dir = args.run_dir
    else:
        if not args.model:
            raise ZooError("the following arguments are required: --model")
        cfg = _run_config(args)
        run_dir = args.run_dir or _new_run_dir(cfg.model)
    summary = fit(cfg, run_dir, resume=args.resume)
    if not distributed.is_writer():
        return
    print(
        json.dumps(
            {
                "run_dir": run_dir,
                "model": summary["model"],
                "dataset": summary["dataset"],
                "steps": summary["steps"],
                **{f"test_{name}": value for name, value in summary["test"].items()},
                **{k: summary[k] for k in ("images_per_s", "tokens_per_s") if k in summary},
                **{k: summary[k] for k in ("best_epoch", "stopped_early") if k in summary},
                "wall_s": round(summary["wall_s"], 2),
            }
        )
    )


def cmd_evaluate(args) -> None:
    print(json.dumps(evaluate_run(args.run_dir, args.data_dir)))


def cmd_bench(args) -> None:
    overrides = _json_pairs(args.set, "--set", "width=0.25")
    options = {"optimizer": args.optimizer, "batch_size": args.batch_size, "dtype": args.dtype}
    check_build(RunConfig(args.model, model_overrides=overrides, **options))
    result = bench(
        args.model, args.batch_size, args.steps, args.optimizer, overrides, args.lowering,
        args.dtype, args.input, args.peer,
    )  # fmt: skip
    print(json.dumps(result if args.lowering == "auto" else {**result, "lowering": args.lowering}))


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="zoo-jax",
        description="The neural network zoo as Flax modules, trained by one jax.jit engine.",
        epilog="zoo-jax COMMAND --help: a command's options. Python: help(zoo_jax).",
    )
    parser.add_argument("--version", action="version", version=f"zoo-jax {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=ArgumentParser, metavar="COMMAND"
    )

    p = sub.add_parser("list", help="the registered models")
    p.add_argument("--json", action="store_true", help="one JSON object per model")
    p.add_argument("--markdown", action="store_true", help="the registry as a Markdown table")
    p.add_argument("--optimizers", action="store_true", help="optimizers and their defaults")
    p.add_argument("--losses", action="store_true", help="losses, aliases and options")
    p.add_argument("--schedules", action="store_true", help="learning-rate schedules")
    p.add_argument("--activations", action="store_true", help="activation names")
    p.add_argument("--chart", action="store_true", help="the zoo chart's nodes and their models")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="a model's card and layer table")
    p.add_argument("name")
    p.add_argument(  # XLA's cost analysis of every module: 5-10x the table's time
        "--flops", action="store_true", help="add each layer's FLOPs (ResNet-152: 2 -> 21 s)"
    )
    p.add_argument("--json", action="store_true", help="the card, params and FLOPs as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train a model; writes a run directory")
    p.add_argument("--model", help="a registered model (zoo-jax list); with --resume: the run's")
    p.add_argument(
        "--dataset",
        help="mnist | fashion-mnist | fsdd | sprites | chars | dates (default: the card's)",
    )
    p.add_argument(
        "--optimizer", help="sgd | nag | rmsprop | adagrad | adadelta | adam | adamax | nadam"
    )
    p.add_argument("--loss", help="a Keras loss (zoo-jax list --losses)")
    p.add_argument("--loss-opt", action="append", metavar="KEY=JSON", help="loss option")
    p.add_argument("--lr", type=float, help="learning rate (default: the optimizer's)")
    p.add_argument("--epochs", type=int, help="total epochs (with --resume: up to this many)")
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--l1", type=float, default=0.0, help="Keras l1 penalty on every kernel")
    p.add_argument("--l2", type=float, default=0.0, help="Keras l2 penalty on every kernel")
    p.add_argument("--set", action="append", metavar="KEY=JSON", help="model attribute override")
    p.add_argument(
        "--opt", action="append", metavar="KEY=JSON", help="optimizer hyperparameter (Keras name)"
    )
    p.add_argument("--weight-decay", type=float, help="decoupled weight decay on every kernel")
    p.add_argument("--max-norm", type=float, help="max-norm constraint on every kernel (Keras)")
    p.add_argument("--clipnorm", type=float, help="clip each gradient tensor to this L2 norm")
    p.add_argument("--schedule", help="learning-rate schedule (zoo-jax list --schedules)")
    p.add_argument("--schedule-opt", action="append", metavar="KEY=JSON", help="schedule option")
    p.add_argument("--augment", help="training-time augmentation: affine (LeCun et al. 1998)")
    p.add_argument(
        "--devices", type=int, help="number of devices (default: 1, or all with --parallel)"
    )
    p.add_argument("--parallel", choices=("none", "pmap", "sharded"), default="none")
    p.add_argument(
        "--coordinator", metavar="HOST:PORT",
        help="a multi-process run (jax.distributed): process 0's address, or auto (JAX "
        "detects a TPU pod slice, Slurm, Open MPI); or JAX_COORDINATOR_ADDRESS",
    )  # fmt: skip
    p.add_argument("--num-processes", type=int, help="processes in the run (JAX_NUM_PROCESSES)")
    p.add_argument("--process-id", type=int, help="this process, 0 … N-1 (JAX_PROCESS_ID)")
    p.add_argument("--nan-policy", choices=("stop", "skip"), default="stop")
    p.add_argument("--train-limit", type=int, help="use only the first N training examples")
    p.add_argument("--test-limit", type=int, help="evaluate on the first N test examples only")
    p.add_argument("--keep-checkpoints", type=int, default=3, help="how many to keep (latest)")
    p.add_argument(
        "--dtype", choices=learners.COMPUTE_DTYPES, default="float32",
        help="compute dtype; bfloat16 keeps parameters and optimizer state in float32",
    )  # fmt: skip
    p.add_argument(
        "--patience", type=int,
        help="early stopping: stop after this many epochs without a better validation loss "
        "and keep the best epoch's state (--epochs is then the most)",
    )  # fmt: skip
    p.add_argument(
        "--min-delta", type=float, default=0.0,
        help="with --patience: the least decrease of the validation loss that counts as "
        "better (default 0)",
    )  # fmt: skip
    p.add_argument("--run-dir", help="where to write (default: runs/MODEL-TIME)")
    p.add_argument(
        "--resume", action="store_true",
        help="continue the run in --run-dir with its config.json (flags given here must agree)",
    )  # fmt: skip
    p.add_argument(
        "--data-dir", help="directory with mnist/, fashion-mnist/ (IDX), fsdd/ (tarball)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a run's latest checkpoint on the test split")
    p.add_argument("run_dir")
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", help="time the compiled train step; prints one JSON line")
    p.add_argument("--model", required=True)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--optimizer")
    p.add_argument("--set", action="append", metavar="KEY=JSON", help="model attribute override")
    p.add_argument(
        "--lowering",
        choices=LOWERINGS,
        default="auto",
        help="plain: without zoo_jax's fast paths (docs/performance.md)",
    )
    p.add_argument("--dtype", choices=learners.COMPUTE_DTYPES, default="float32")
    p.add_argument(
        "--input", choices=INPUTS, default="dataset",
        help="reference: the card's own input size and classes (224×224×3, 1,000 for ResNet-50)",
    )  # fmt: skip
    p.add_argument(
        "--peer", choices=sorted(PEERS),
        help="also time a plain Flax step of the same model in alternating turns (resnet50)",
    )  # fmt: skip
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        if not (sys.argv[1:] if argv is None else argv):  # no command: say which there are
            parser.print_help()
            return 0
        args = parser.parse_args(argv)
        args.func(args)
    except BrokenPipeError:  # e.g. `zoo-jax info cnn | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        return report(err, "zoo-jax")  # one line and 2, or the traceback of a bug
    except KeyboardInterrupt as err:
        return report_interrupt(err, "zoo-jax")
    return 0


if __name__ == "__main__":
    sys.exit(main())
