"""Generation throughput: our ``generate()`` vs the generator's own library called one image at a time.

For each backend a tiny random pipeline is built (tests/tiny_pipelines.py) and loaded through the registry
(genssl.generate.registry.load_generator, the workflow's path; fp32 on the CPU, fp16 on CUDA). The same
workload, N source images x K variants, then runs in every mode the backend offers:

- ``diffusers, 1 image/call``: the pipeline called on one PIL image at a time with its own generator, the way the
  paper's public code calls it (same pipeline object, so the same DDIM sampler and steps);
- ``G, 1 sample/call`` (the GANs): the encoder and G called on one sample at a time, the way the paper's public
  code runs IC-GAN (one image, one noise vector per call; the same loaded networks, truncation and noise);
- ``generate()``: the backend as the workflow runs it, ``batch_size`` samples per batched pipeline call.

Modes alternate over ROUNDS rounds (after one warm-up run of each) so all see the same machine conditions; the
table gives the median seconds, images/s and the speed-up over the first mode of the backend.

    python benchmarks/generation.py [--backends sd_unclip sd_image_variation icdiffusion icgan icgan_pretrained]
                                    [--images 8] [--variants 2] [--batch-size 16] [--steps 10] [--rounds 3]
                                    [--device cpu|cuda] [--threads T]

icdiffusion has no library pipeline to call and shows its throughput alone. icgan is trained for a few steps at
its default size (16 px, ch 8) on the random sources; icgan_pretrained loads a random release in the official
layout (tests/tiny_releases.py) at 64 px with ch 4 and its full SwAV ResNet-50, fed 64 px inputs instead of 224
(``--steps`` does not apply to the GANs). To add a backend, add to SUBJECTS a function that builds it in a
temporary directory and returns its named modes, each a callable that generates every variant of (images,
indices).
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import diffusers
import numpy as np
import torch
import transformers
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genssl.config import validate_config
from genssl.generate.base import to_float_images, variant_generators
from genssl.generate.icdiffusion import train_icdiffusion
from genssl.generate.icgan import train_icgan
from genssl.generate.icgan.sampling import ICGANVariants, truncated_noise
from genssl.generate.registry import load_generator
from genssl.models import build_backbone
from genssl.models.encoder_file import save_encoder
from genssl.store import StoreWriter
from tests import tiny_pipelines, tiny_releases

#: A mode: generates every variant of (uint8 images (N, H, W, 3), dataset indices (N,)).
Mode = Callable[[np.ndarray, np.ndarray], object]


def stable_diffusion(backend: str) -> Callable[[Path, argparse.Namespace], dict[str, Mode]]:
    """The modes of a Stable Diffusion backend on its tiny pipeline."""

    def build(directory: Path, args: argparse.Namespace) -> dict[str, Mode]:
        entry = {
            "backend": backend,
            "path": str(tiny_pipelines.BUILDERS[backend](directory)),
            "variants": args.variants,
            "batch_size": args.batch_size,
            "inference_steps": args.steps,
            "input_size": tiny_pipelines.CLIP_SIZE,
            "device": args.device,
        }
        config = validate_config({"generators": {backend: entry}})["generators"][backend]
        generator = load_generator(backend, config)

        def one_image_per_call(images: np.ndarray, indices: np.ndarray) -> None:
            for image, index in zip(images, indices, strict=True):
                for variant in range(args.variants):
                    generator.pipe(
                        image=Image.fromarray(image),
                        generator=torch.Generator().manual_seed(int(index) * args.variants + variant),
                        num_inference_steps=args.steps,
                        eta=0.0,
                        output_type="np",
                        **generator.call_kwargs(1),
                    )

        return {
            "diffusers, 1 image/call": one_image_per_call,
            "generate()": lambda images, indices: generator.generate(images, indices, 0, args.out_size),
        }

    return build


def random_store_and_encoder(directory: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """A store of max(16, ``--images``) random ``--out-size`` px images and a random small conditioning encoder
    (speed does not depend on the weights)."""
    store = directory / "data"
    store.mkdir(parents=True)
    rng = np.random.default_rng(0)
    writer = StoreWriter(store, "raw", (args.out_size, args.out_size, 3))
    n = max(args.images, 16)
    for _ in range(n):
        writer.add(rng.integers(0, 256, (args.out_size, args.out_size, 3), dtype=np.uint8).tobytes())
    writer.close(np.zeros(n, np.int64), ["0"], {"train": np.arange(n)}, {"source": "benchmark"})
    backbone_config = {"name": "small_resnet", "width": 8, "blocks": [1, 1]}
    backbone, dim = build_backbone(backbone_config)
    save_encoder(directory / "encoder.safetensors", backbone, backbone_config, dim)
    return store, directory / "encoder.safetensors"


def icdiffusion(directory: Path, args: argparse.Namespace) -> dict[str, Mode]:
    """icdiffusion, trained for a few steps on a random store (:func:`random_store_and_encoder`). Its networks
    always run micro-batches of 32 rows (padded, for batch-size independence), so a one-sample-per-call baseline
    would only time padding: throughput only."""
    store, _ = random_store_and_encoder(directory, args)
    entry = {
        "backend": "icdiffusion",
        "conditioning": {"encoder": str(directory / "encoder.safetensors")},
        "variants": args.variants,
        "inference_steps": args.steps,
        "neighbours": 2,
        "train": {"steps": 2, "batch_size": 8},
        "device": args.device,
    }

    def load(batch_size: int) -> object:
        config = validate_config({"generators": {"icdiffusion": {**entry, "batch_size": batch_size}}})
        return load_generator("icdiffusion", config["generators"]["icdiffusion"], directory / "weights")

    train_icdiffusion(
        "icdiffusion",
        validate_config({"generators": {"icdiffusion": entry}})["generators"]["icdiffusion"],
        0,
        store,
        directory / "encoder.safetensors",
        directory / "weights",
    )
    batched = load(args.batch_size)
    return {"generate()": lambda images, indices: batched.generate(images, indices, 0, args.out_size)}


def gan_modes(generator: ICGANVariants, args: argparse.Namespace) -> dict[str, Mode]:
    """A GAN backend's modes: one sample per call of its encoder and G, and ``generate()``."""

    @torch.inference_mode()
    def one_sample_per_call(images: np.ndarray, indices: np.ndarray) -> None:
        for image, draws in zip(
            np.repeat(images, args.variants, axis=0),
            variant_generators(0, generator.name, indices, args.variants),
            strict=True,
        ):
            features = generator.encoder(to_float_images(image[None]).to(generator.device))
            if generator.condition is not None:
                features = generator.condition(features)
            noise = truncated_noise([draws], generator.generator.dim_z, generator.config["truncation"])
            generator.generator(noise.to(generator.device, generator.dtype), features.to(generator.dtype))

    return {
        "G, 1 sample/call": one_sample_per_call,
        "generate()": lambda images, indices: generator.generate(images, indices, 0, args.out_size),
    }


def icgan(directory: Path, args: argparse.Namespace) -> dict[str, Mode]:
    """icgan at its default size, trained for a few steps on a random store (:func:`random_store_and_encoder`)."""
    store, encoder = random_store_and_encoder(directory, args)
    entry = {
        "backend": "icgan",
        "conditioning": {"encoder": str(encoder)},
        "variants": args.variants,
        "batch_size": args.batch_size,
        "neighbours": 2,
        "train": {"steps": 2, "batch_size": 8},
        "device": args.device,
    }
    config = validate_config({"generators": {"icgan": entry}})["generators"]["icgan"]
    train_icgan("icgan", config, 0, store, encoder, directory / "weights")
    return gan_modes(load_generator("icgan", config, directory / "weights"), args)


def icgan_pretrained(directory: Path, args: argparse.Namespace) -> dict[str, Mode]:
    """icgan_pretrained on a random release in the official layout (64 px, ch 4, the full SwAV ResNet-50)."""
    architecture = {"ch": 4, "dim_z": 120, "feature_embedding": 64, "attention": [32], "class_embeddings": 1000}
    generator_path, encoder_path = tiny_releases.write_release(
        directory, {**architecture, "class_embedding_dim": 128}, 64
    )
    entry = {
        "backend": "icgan_pretrained",
        "generator_path": str(generator_path),
        "encoder_path": str(encoder_path),
        "architecture": architecture,
        "resolution": 64,
        "input_size": 64,
        "variants": args.variants,
        "batch_size": args.batch_size,
        "device": args.device,
    }
    config = validate_config({"generators": {"icgan_pretrained": entry}})["generators"]["icgan_pretrained"]
    return gan_modes(load_generator("icgan_pretrained", config), args)


#: Backend name -> builder of its modes (the first mode is the baseline of the speed-up column).
SUBJECTS: dict[str, Callable[[Path, argparse.Namespace], dict[str, Mode]]] = {
    "sd_unclip": stable_diffusion("sd_unclip"),
    "sd_image_variation": stable_diffusion("sd_image_variation"),
    "icdiffusion": icdiffusion,
    "icgan": icgan,
    "icgan_pretrained": icgan_pretrained,
}


def timed(mode: Mode, images: np.ndarray, indices: np.ndarray, device: str) -> float:
    start = time.perf_counter()
    mode(images, indices)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=sorted(SUBJECTS), default=list(SUBJECTS))
    parser.add_argument("--images", type=int, default=8, help="source images")
    parser.add_argument("--variants", type=int, default=2, help="variants per image")
    parser.add_argument("--batch-size", type=int, default=16, help="samples per generate() batch")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps")
    parser.add_argument("--source-size", type=int, default=48, help="side of the source images in pixels")
    parser.add_argument("--out-size", type=int, default=tiny_pipelines.SIZE, help="side of the stored variants")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per mode (median reported)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads of torch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for library in (diffusers, transformers):
        library.utils.logging.set_verbosity_error()
        library.utils.logging.disable_progress_bar()

    images = np.random.default_rng(0).integers(0, 256, (args.images, args.source_size, args.source_size, 3))
    images, indices = images.astype(np.uint8), np.arange(args.images)
    samples = args.images * args.variants
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(
        f"device {device} ({'fp16' if args.device == 'cuda' else 'fp32'}); {args.images} images x {args.variants} "
        f"variants = {samples} samples, batch_size {args.batch_size}, {args.steps} steps, "
        f"{args.source_size} px sources -> {tiny_pipelines.SIZE} px tiny pipelines, {args.rounds} rounds; "
        f"torch {torch.__version__}, diffusers {diffusers.__version__}"
    )
    print(f"{'backend':<20} {'mode':<30} {'seconds':>8} {'images/s':>9} {'speed-up':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            modes = SUBJECTS[backend](Path(tmp) / backend, args)
            times: dict[str, list[float]] = {name: [] for name in modes}
            for round_ in range(args.rounds + 1):
                for name, mode in modes.items():
                    seconds = timed(mode, images, indices, args.device)
                    if round_:  # round 0 warms up
                        times[name].append(seconds)
            baseline = statistics.median(next(iter(times.values())))
            for name, values in times.items():
                seconds = statistics.median(values)
                print(f"{backend:<20} {name:<30} {seconds:8.2f} {samples / seconds:9.1f} {baseline / seconds:8.2f}x")


if __name__ == "__main__":
    main()
