"""Generation at paper scale: the real-size pipelines (random weights from their published architectures,
genssl.generate.architectures) at the paper's settings, and what each speed-up of the backends is worth.

Settings: 10 DDIM steps, the pipeline's guidance (unCLIP 10, image variation 7.5), fp16 (or ``--precision bf16``)
on CUDA, the pipeline's native size (768 px for unCLIP-small, 512 px for image variation; ``--pipeline-size`` to
change it), variants resized to 224 px. For each backend the rows are, in order:

- ``diffusers, 1 image/call``: the pipeline called on one PIL image per variant, the way the paper's public code
  calls it (diffusers' defaults: fused SDPA attention, whole-batch VAE decode);
- ``generate() before``: the batched backend as it was before these speed-ups: one pipeline call per batch on the
  sources' CLIP inputs and the prompt (CLIP and the text encoder run for every sample), classic attention (the
  explicit softmax(QK^T)V of ``AttnProcessor``), the VAE decoding one image at a time (``enable_slicing``);
- then each speed-up added to the previous row and kept: ``+ shared embeddings`` (CLIP once per source image for
  its K variants, the prompt once: :meth:`DiffusersVariations.encode`), ``+ SDPA attention``,
  ``+ VAE decode batched``, ``+ channels_last``, ``+ torch.compile(UNet)`` and then ``+ torch.compile(VAE
  decoder)`` (for the ``--compile`` backends, by default sd_unclip alone; it says why when the compiler fails); the
  ``+ VAE decode batched`` row is the backend's default on the CPU, the UNet compile row its default on CUDA (the
  VAE's compilation is measured, not a default);
- ``batch B``: the eager default at other batch sizes (``--batch-sizes``);
- the ``torch.compile`` rows last, after every backend's eager rows, as they pay a minute of compilation;
- icgan_pretrained: ``G, 1 sample/call`` (the paper's code: SwAV and G per sample) and ``generate()``.

Each row runs one untimed warm-up batch, then generates ``--images`` x ``--variants`` samples (the 1 image/call
row: ``--baseline-samples`` of them); each row reports images/s, the speed-up over the 1 image/call row and the
UNet's share of the time: the time inside the UNet's calls (CUDA events recorded by forward hooks, which do not
synchronise) over the row's time. ``--budget-s`` skips the rows that would start after that many seconds, saying
so. The table goes to stdout and to ``--out`` (``.md`` or ``.json``).

Before its rows, each Stable Diffusion backend prints its FLOPs per variant image, counted on the meta device
(:func:`flops_per_variant`): the UNet's share of them is the share of the time it would take were every other
network (and the host) as efficient as the UNet, the ceiling of the ``UNet share`` column. ``--flops-only`` prints
just these lines, in seconds on any machine.

    python benchmarks/generation_scale.py --device cuda --budget-s 150 --out generation_scale.md
    python benchmarks/generation_scale.py --tiny --device cpu --compile   # tiny pipelines, minutes on a CPU
    python benchmarks/generation_scale.py --flops-only --variants 10      # the FLOP ceilings at the paper's K
"""

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
import transformers
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genssl.config import validate_config
from genssl.generate.architectures import architecture, build_pipeline
from genssl.generate.base import resize_images, to_uint8_images, variant_generators
from genssl.generate.stable_diffusion import (
    DiffusersVariations,
    StableDiffusionImageVariations,
    StableUnCLIPVariations,
    compile_forward,
)
from tests import tiny_pipelines

CLASSES: dict[str, type[DiffusersVariations]] = {
    "sd_unclip": StableUnCLIPVariations,
    "sd_image_variation": StableDiffusionImageVariations,
}
TINY: dict[str, dict[str, Any]] = {
    "sd_unclip": tiny_pipelines.SD_UNCLIP,
    "sd_image_variation": tiny_pipelines.SD_IMAGE_VARIATION,
}
#: A mode: generates every variant of (uint8 images (N, H, W, 3), dataset indices (N,)).
Mode = Callable[[np.ndarray, np.ndarray], object]


@dataclass
class Row:
    backend: str
    mode: str
    batch_size: int
    samples: int
    seconds: float
    images_per_s: float
    warmup_s: float
    speed_up: float | None = None
    unet_share: float | None = None
    note: str = ""


class Clock:
    """Wall time of the benchmark against ``--budget-s``, and timings that wait for the device."""

    def __init__(self, device: torch.device, budget: float) -> None:
        self.device, self.budget, self.started = device, budget, time.perf_counter()

    def left(self) -> bool:
        return time.perf_counter() - self.started < self.budget

    def time(self, function: Callable[[], object]) -> float:
        self.sync()
        start = time.perf_counter()
        function()
        self.sync()
        return time.perf_counter() - start

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def entry(backend: str, args: argparse.Namespace, batch_size: int, **settings: Any) -> dict[str, Any]:
    """The backend's config entry, resolved by the schema (speed settings off: the modes turn them on)."""
    raw = {
        "backend": backend,
        "variants": args.variants,
        "batch_size": batch_size,
        "device": args.device,
        "precision": args.precision,
        **settings,
    }
    return validate_config({"generators": {backend: raw}})["generators"][backend]


def per_variant_generate(generator: DiffusersVariations, images: np.ndarray, indices: np.ndarray, size: int) -> None:
    """The backend before shared embeddings: one pipeline call per batch on the CLIP inputs of every sample's
    source (and, for unCLIP, the prompt), encoded anew in each call."""
    k, batch = generator.config["variants"], generator.config["batch_size"]
    sources = np.repeat(images, k, axis=0)
    generators = variant_generators(0, generator.name, indices, k)
    with torch.inference_mode():
        for start in range(0, len(sources), batch):
            stop = min(start + batch, len(sources))
            output = generator.pipe(
                image=generator.clip_input(sources[start:stop]),
                generator=generators[start:stop],
                num_inference_steps=generator.config["inference_steps"],
                guidance_scale=generator.guidance_scale,
                eta=0.0,
                output_type="pt",
                **generator.size,
                **generator.call_kwargs(stop - start),
            )
            to_uint8_images(resize_images(output.images.float(), size))


def one_image_per_call(generator: DiffusersVariations, images: np.ndarray, indices: np.ndarray, size: int) -> None:
    """The paper's code: the pipeline on one PIL image, one variant per call."""
    k = generator.config["variants"]
    with torch.inference_mode():
        for image, draws in zip(
            np.repeat(images, k, axis=0), variant_generators(0, generator.name, indices, k), strict=True
        ):
            output = generator.pipe(
                image=Image.fromarray(image),
                generator=draws,
                num_inference_steps=generator.config["inference_steps"],
                guidance_scale=generator.guidance_scale,
                eta=0.0,
                output_type="pt",
                **generator.size,
                **generator.call_kwargs(1),
            )
            to_uint8_images(resize_images(output.images.float(), size))


class UNetTimer:
    """Time spent in a module's calls during a run: CUDA events recorded by forward hooks around each call on
    CUDA (no synchronisation, so the run is timed as it runs), wall time on the CPU."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.module, self.cuda = module, device.type == "cuda"
        self.marks: list[Any] = []

    def mark(self, *_: Any) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def __enter__(self) -> "UNetTimer":
        self.hooks = [self.module.register_forward_pre_hook(self.mark), self.module.register_forward_hook(self.mark)]
        return self

    def __exit__(self, *_: object) -> None:
        for hook in self.hooks:
            hook.remove()

    def seconds(self) -> float:
        """Total seconds between each call's start and end marks."""
        pairs = zip(self.marks[::2], self.marks[1::2], strict=True)
        if self.cuda:
            torch.cuda.synchronize()
            return sum(start.elapsed_time(end) for start, end in pairs) / 1000
        return sum(end - start for start, end in pairs)


class CompileFailures(logging.Handler):
    """Collects the backend's compile-fallback warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


#: The torch.compile rows of a backend, run after every backend's eager rows (they pay minutes of compilation).
CompileRow = Callable[[], list[Row]]


def flops_per_variant(backend: str, args: argparse.Namespace) -> dict[str, float]:
    """FLOPs per variant image of each network of a Stable Diffusion backend at the benchmark's settings, counted
    by ``FlopCounterMode`` on the meta device (shapes only): the UNet ``--steps`` times on both guidance branches,
    the VAE decoding one image at the pipeline's size, CLIP's image encoder once per source image (shared by its
    ``--variants`` variants). The UNet's share of them bounds its share of the time, were every network as
    efficient as the UNet."""
    spec = TINY[backend] if args.tiny else architecture(backend)
    pipe = build_pipeline(spec, "meta", torch.float16)
    unet, vae, encoder = pipe.unet, pipe.vae, pipe.image_encoder
    latent = (args.pipeline_size or unet.config.sample_size * pipe.vae_scale_factor) // pipe.vae_scale_factor
    tokens = pipe.tokenizer.model_max_length if getattr(pipe, "text_encoder", None) is not None else 1
    side = encoder.config.image_size

    def count(module: torch.nn.Module, *inputs: torch.Tensor, **kwargs: Any) -> float:
        with FlopCounterMode(display=False) as counter:
            module(*inputs, **kwargs)
        return float(counter.get_total_flops())

    with torch.device("meta"), torch.inference_mode():
        f16 = {"dtype": torch.float16}
        conditioning = {"encoder_hidden_states": torch.empty(2, tokens, unet.config.cross_attention_dim, **f16)}
        if unet.config.projection_class_embeddings_input_dim:
            conditioning["class_labels"] = torch.empty(2, unet.config.projection_class_embeddings_input_dim, **f16)
        latents = torch.empty(2, unet.config.in_channels, latent, latent, **f16)
        flops = {
            "unet": args.steps * count(unet, latents, torch.tensor([999, 999]), **conditioning),
            "vae": count(vae.decode, torch.empty(1, vae.config.latent_channels, latent, latent, **f16)),
            "clip": count(encoder, torch.empty(1, 3, side, side, **f16)) / args.variants,
        }
    return flops


def print_flops(backend: str, args: argparse.Namespace) -> None:
    flops = flops_per_variant(backend, args)
    total = sum(flops.values())
    print(
        f"{backend}: TFLOP per variant: UNet {flops['unet'] / 1e12:.2f} ({args.steps} steps x 2 guidance branches), "
        f"VAE decode {flops['vae'] / 1e12:.2f}, CLIP {flops['clip'] / 1e12:.3f} (1 per {args.variants} variants); "
        f"the UNet's share of the FLOPs {flops['unet'] / total:.3f}",
        flush=True,
    )


def diffusers_rows(backend: str, args: argparse.Namespace, clock: Clock) -> tuple[list[Row], CompileRow | None]:
    """The eager rows of a Stable Diffusion backend (see the module docstring), and its compile row to run last
    (for the ``--compile`` backends)."""
    device, dtype = clock.device, torch.float16 if args.precision == "fp16" else torch.bfloat16
    if device.type == "cpu":
        dtype = torch.float32
    spec = TINY[backend] if args.tiny else architecture(backend)
    settings = {"inference_steps": args.steps, "pipeline_size": args.pipeline_size, "path": "(random weights)"}
    if args.tiny:
        settings["input_size"] = tiny_pipelines.CLIP_SIZE
    config = entry(backend, args, args.batch_size, channels_last=False, compile=False, **settings)
    started = time.perf_counter()
    generator = CLASSES[backend](backend, config, device, dtype, build_pipeline(spec, device, dtype))
    print(f"{backend}: built in {time.perf_counter() - started:.1f} s at {generator.size['height']} px", flush=True)
    pipe = generator.pipe
    images = np.random.default_rng(0).integers(0, 256, (args.images, 256, 256, 3), dtype=np.uint8)
    indices = np.arange(args.images)
    samples = args.images * args.variants
    rows: list[Row] = []

    def measure(mode: str, function: Mode, count: int, warm: int | None = None) -> Row | None:
        if not clock.left():
            print(f"{backend} {mode}: skipped (time budget)", flush=True)
            return None
        warm = warm or max(1, min(generator.config["batch_size"] // args.variants, len(images)))
        n = max(1, count // args.variants)
        try:
            warmup = clock.time(lambda: function(images[:warm], indices[:warm]))
            with UNetTimer(pipe.unet, device) as unet:
                seconds = clock.time(lambda: function(images[:n], indices[:n]))
        except torch.OutOfMemoryError as err:  # a setup that does not fit is a result too; the next rows still run
            print(f"{backend} {mode}: out of device memory ({str(err).splitlines()[0]})", flush=True)
            torch.cuda.empty_cache()
            return None
        made = n * args.variants
        row = Row(backend, mode, generator.config["batch_size"], made, seconds, made / seconds, warmup)
        row.unet_share = unet.seconds() / seconds
        rows.append(row)
        print_row(row, rows[0].images_per_s if rows else None)
        return row

    def generate(images_: np.ndarray, indices_: np.ndarray) -> None:
        generator.generate(images_, indices_, 0, args.out_size)

    def before(images_: np.ndarray, indices_: np.ndarray) -> None:
        per_variant_generate(generator, images_, indices_, args.out_size)

    measure(
        "diffusers, 1 image/call",
        lambda i, x: one_image_per_call(generator, i, x, args.out_size),
        args.baseline_samples,
        warm=1,
    )
    pipe.unet.set_attn_processor(AttnProcessor())
    pipe.vae.enable_slicing()
    measure("generate() before", before, samples)
    measure("+ shared embeddings", generate, samples)
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    measure("+ SDPA attention", generate, samples)
    pipe.vae.disable_slicing()
    measure("+ VAE decode batched (CPU default)", generate, samples)
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    measure("+ channels_last", generate, samples)
    for batch in args.batch_sizes:
        generator.config["batch_size"] = batch
        measure(f"batch {batch}", generate, max(samples, batch))
    generator.config["batch_size"] = args.batch_size

    def compiled() -> list[Row]:
        failures = CompileFailures()
        logging.getLogger("genssl.generate.stable_diffusion").addHandler(failures)
        made = []
        for mode, compile_part in (
            ("+ torch.compile(UNet) (CUDA default)", lambda: compile_forward(pipe.unet, "UNet")),
            ("+ torch.compile(VAE decoder)", lambda: compile_forward(pipe.vae.decoder, "VAE decoder")),
        ):
            compile_part()
            row = measure(mode, generate, samples)
            if row is None:
                break
            row.note = f"compilation in the {row.warmup_s:.0f} s warm-up"
            if failures.messages:
                row.mode, row.note = f"{mode}: failed, eager", failures.messages.pop(0)
                print(f"{backend}: {row.note}", flush=True)
            made.append(row)
        return made

    return list(rows), compiled if backend in args.compile else None


def icgan_rows(args: argparse.Namespace, clock: Clock) -> list[Row]:
    """icgan_pretrained at the release's size (``--tiny``: ch 4 at 64 px), random weights: the paper's code's one
    sample per call of SwAV and G, and ``generate()``. Needs torchvision (SwAV's ResNet-50); without it the rows
    are skipped, saying so."""
    try:
        from genssl.generate.icgan.biggan import Generator
        from genssl.generate.icgan.pretrained import FEATURE_DIM
        from genssl.generate.icgan.sampling import ICGANVariants, truncated_noise
        from genssl.generate.icgan.swav import swav_features, swav_trunk
    except ImportError as error:
        print(f"icgan_pretrained: skipped ({error})", flush=True)
        return []
    device = clock.device
    dtype = torch.float32 if device.type == "cpu" else torch.float16
    spec = architecture("icgan_pretrained")
    gen_arch, resolution = spec["generator"]["architecture"], spec["generator"]["resolution"]
    input_size = spec["encoder"]["input_size"]
    if args.tiny:
        gen_arch, resolution, input_size = {**gen_arch, "ch": 4}, 64, 64
    paths = {"generator_path": "(random weights)", "encoder_path": "(random weights)", "resolution": resolution}
    config = entry("icgan_pretrained", args, args.batch_size, architecture=gen_arch, input_size=input_size, **paths)
    with torch.device(device):
        model = Generator.from_config(gen_arch, resolution, FEATURE_DIM)
        swav = swav_trunk().eval()

    def encoder(x: torch.Tensor) -> torch.Tensor:
        return swav_features(swav, x, resolution, input_size)

    generator = ICGANVariants("icgan_pretrained", config, device, dtype, model, encoder)
    images = np.random.default_rng(0).integers(0, 256, (args.images, 256, 256, 3), dtype=np.uint8)
    indices = np.arange(args.images)
    rows: list[Row] = []

    @torch.inference_mode()
    def one_sample_per_call(images_: np.ndarray, indices_: np.ndarray) -> None:
        k = args.variants
        for image, draws in zip(
            np.repeat(images_, k, axis=0), variant_generators(0, generator.name, indices_, k), strict=True
        ):
            condition = generator.encode(image[None])
            noise = truncated_noise([draws], model.dim_z, config["truncation"]).to(device, dtype)
            to_uint8_images(resize_images(model(noise, condition.to(dtype)).float(), args.out_size))

    for mode, function in (
        ("G, 1 sample/call", one_sample_per_call),
        ("generate()", lambda i, x: generator.generate(i, x, 0, args.out_size)),
    ):
        if not clock.left():
            print(f"icgan_pretrained {mode}: skipped (time budget)", flush=True)
            continue
        warmup = clock.time(lambda f=function: f(images[:1], indices[:1]))
        seconds = clock.time(lambda f=function: f(images, indices))
        made = args.images * args.variants
        rows.append(Row("icgan_pretrained", mode, args.batch_size, made, seconds, made / seconds, warmup))
        print_row(rows[-1], rows[0].images_per_s)
    return rows


HEADER = (
    f"{'backend':<20} {'mode':<38} {'batch':>5} {'samples':>7} {'images/s':>9} {'speed-up':>8} {'UNet share':>10} "
    f"{'warm-up s':>9}"
)


def print_row(row: Row, baseline: float | None) -> None:
    row.speed_up = None if baseline is None else row.images_per_s / baseline
    share = "" if row.unet_share is None else f"{row.unet_share:.2f}"
    speed_up = "" if row.speed_up is None else f"{row.speed_up:.2f}x"
    print(
        f"{row.backend:<20} {row.mode:<38} {row.batch_size:>5} {row.samples:>7} {row.images_per_s:>9.2f} "
        f"{speed_up:>8} {share:>10} {row.warmup_s:>9.1f} {row.note}",
        flush=True,
    )


def markdown(rows: list[Row], header: str) -> str:
    lines = [
        header,
        "",
        "| backend | mode | batch | samples | images/s | speed-up | UNet share | warm-up s | note |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        share = "" if r.unet_share is None else f"{r.unet_share:.2f}"
        speed_up = "" if r.speed_up is None else f"{r.speed_up:.2f}x"
        lines.append(
            f"| {r.backend} | {r.mode} | {r.batch_size} | {r.samples} | {r.images_per_s:.2f} | {speed_up} | "
            f"{share} | {r.warmup_s:.1f} | {r.note} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["sd_unclip", "sd_image_variation", "icgan_pretrained"])
    parser.add_argument("--tiny", action="store_true", help="tiny pipelines (tests/tiny_pipelines.py), for CPUs")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp16", "bf16"], default="fp16", help="on CUDA (CPU: fp32)")
    parser.add_argument("--images", type=int, default=4, help="source images per row")
    parser.add_argument("--variants", type=int, default=4, help="K, variants per source image")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per batch")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[32], help="other batch sizes to sweep")
    parser.add_argument("--baseline-samples", type=int, default=4, help="samples of the 1 image/call row")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps")
    parser.add_argument("--pipeline-size", type=int, default=None, help="generated side (default: native)")
    parser.add_argument("--out-size", type=int, default=224, help="side of the stored variants")
    parser.add_argument(
        "--compile",
        nargs="*",
        default=["sd_unclip"],
        help="the backends with a torch.compile row (about a minute of compilation each on a GPU)",
    )
    parser.add_argument("--flops-only", action="store_true", help="only the FLOPs per variant (seconds, any device)")
    parser.add_argument("--budget-s", type=float, default=float("inf"), help="start no row after this many seconds")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads of torch")
    parser.add_argument("--out", type=Path, help="also write the table here (.md or .json)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for library in (diffusers, transformers):
        library.utils.logging.set_verbosity_error()
        library.utils.logging.disable_progress_bar()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    device = torch.device(args.device)
    clock = Clock(device, args.budget_s)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    precision = args.precision if device.type == "cuda" else "fp32"
    header = (
        f"device {name} ({precision}); {'tiny' if args.tiny else 'real-size'} pipelines, random weights; "
        f"{args.images} images x {args.variants} variants, batch {args.batch_size}, {args.steps} steps, "
        f"variants resized to {args.out_size} px; torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"transformers {transformers.__version__}"
    )
    print(header, flush=True)
    if not args.flops_only:
        print(HEADER, flush=True)
    rows: list[Row] = []
    compile_rows: list[CompileRow] = []
    for backend in args.backends:
        if backend in CLASSES:
            print_flops(backend, args)
        if args.flops_only:
            continue
        if backend == "icgan_pretrained":
            rows += icgan_rows(args, clock)
            continue
        eager, compiled = diffusers_rows(backend, args, clock)
        rows += eager
        compile_rows += [compiled] if compiled is not None else []
    for compiled in compile_rows:
        rows += compiled()
    print(f"total {time.perf_counter() - clock.started:.0f} s", flush=True)
    if args.out is not None:
        if args.out.suffix == ".json":
            args.out.write_text(json.dumps({"header": header, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
        else:
            args.out.write_text(markdown(rows, header))


if __name__ == "__main__":
    main()
