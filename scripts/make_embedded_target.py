"""Render the embedded 10-image target set (fsgen_hub/assets/target/) from the Noto Color Emoji font.

The images are ten human-face emoji ("emoji people"), a cartoon-face domain that a faces source can
be adapted to. The emoji artwork is Apache-2.0 (googlefonts/noto-emoji); the Debian package
`fonts-noto-color-emoji` ships the compiled font (SIL OFL 1.1). Re-run after `apt-get install
fonts-noto-color-emoji`:  python scripts/make_embedded_target.py
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
FACES = {  # file stem -> emoji code point
    "baby": "\U0001F476", "girl": "\U0001F467", "child": "\U0001F9D2", "boy": "\U0001F466",
    "woman": "\U0001F469", "person": "\U0001F9D1", "man": "\U0001F468", "old_woman": "\U0001F475",
    "older_person": "\U0001F9D3", "old_man": "\U0001F474",
}


def render(char: str, size: int) -> Image.Image:
    font = ImageFont.truetype(FONT, 109)  # CBDT bitmaps exist at this size only
    canvas = Image.new("RGBA", (160, 160), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((80, 80), char, font=font, embedded_color=True, anchor="mm")
    box = canvas.getbbox()
    art = canvas.crop(box)
    side = max(art.size) + 8  # square with a small margin, centred
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    square.alpha_composite(art, ((side - art.width) // 2, (side - art.height) // 2))
    return square.convert("RGB").resize((size, size), Image.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "fsgen_hub/assets/target"))
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stem, char in FACES.items():
        render(char, args.size).save(out / f"{stem}.png", optimize=True)
    print(f"wrote {len(FACES)} images to {out}")


if __name__ == "__main__":
    main()
