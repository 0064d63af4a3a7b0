"""The prepared-clip cache of a VLM2Vec processor: clips given by path (frame folders, video files) are decoded,
sampled and resized once and reused while their files are unchanged.

This file is copied verbatim into every VLM2Vec model repository on the Hub, so it imports only `PIL` besides the
standard library.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from PIL import Image

from .media_loading import FRAME_FILE_EXTENSIONS, list_frame_files, sample_frame_indices

# Prepared clips kept per processor (frame folders and video files only), in bytes of RGB pixels (w * h * 3 a frame).
DEFAULT_CLIP_CACHE_BYTES = 1 << 30


def clip_signature(video: Any, num_frames: int) -> tuple | None:
    """What a clip given by path is made of, so that a changed file gives another key: for a video file its
    resolved path, `st_mtime_ns` and `st_size`; for a frame folder its resolved path, the frame-file listing and each
    sampled frame's `st_mtime_ns` / `st_size`; plus `num_frames`. `None` for frames given as lists or arrays, and for
    a path that is neither (left to [`load_video`] to refuse with its own error)."""
    if not isinstance(video, (str, os.PathLike)):
        return None
    path = Path(video)
    try:
        if path.is_dir():
            files = list_frame_files(path)
            if not files:
                return None
            sampled = [files[index].stat() for index in sample_frame_indices(len(files), num_frames)]
            listing = tuple(file.name for file in files)
            stats = tuple((stat.st_mtime_ns, stat.st_size) for stat in sampled)
            return ("folder", str(path.resolve()), num_frames, listing, stats)
        if path.is_file() and path.suffix.lower() not in FRAME_FILE_EXTENSIONS:
            stat = path.stat()
            return ("file", str(path.resolve()), num_frames, stat.st_mtime_ns, stat.st_size)
    except OSError:  # unreadable: load_video raises what it raises today
        return None
    return None


class ClipCache:
    """A least-recently-used store of prepared clips (lists of PIL frames), bounded by `max_bytes` of pixels (the sum
    of `width * height * bands` over the frames; 0 stores nothing). A clip bigger than the bound is not stored.

    A copy (`copy.deepcopy`, pickling for data-loader workers) starts empty with the same bound."""

    def __init__(self, max_bytes: int = DEFAULT_CLIP_CACHE_BYTES):
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
            raise ValueError(f"clip_cache_bytes must be a non-negative integer (bytes), got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[list[Image.Image], int]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def size_of(frames: list[Image.Image]) -> int:
        return sum(frame.width * frame.height * len(frame.getbands()) for frame in frames)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> list[Image.Image] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, frames: list[Image.Image]) -> None:
        size = self.size_of(frames)
        with self._lock:
            if key in self._entries:
                self.bytes -= self._entries.pop(key)[1]
            if size > self.max_bytes:
                return
            self._entries[key] = (frames, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                self.bytes -= self._entries.popitem(last=False)[1][1]

    def resize(self, max_bytes: int) -> None:
        """Set a new bound, evicting the least recently used clips that no longer fit."""
        fresh = ClipCache(max_bytes)  # validates
        with self._lock:
            self.max_bytes = fresh.max_bytes
            while self.bytes > self.max_bytes:
                self.bytes -= self._entries.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def __deepcopy__(self, memo) -> ClipCache:
        return ClipCache(self.max_bytes)

    def __reduce__(self):
        return (ClipCache, (self.max_bytes,))


class PreparedClip(list):
    """The frames [`VLM2VecProcessor.prepare_video`] returns (a list of PIL images, sampled, RGB and resized): the
    processor call takes them as they are instead of preparing them again."""


__all__ = ["DEFAULT_CLIP_CACHE_BYTES", "ClipCache", "PreparedClip", "clip_signature"]
