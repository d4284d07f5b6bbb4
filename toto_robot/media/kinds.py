"""Which files are media: extensions by kind (lower case, with the dot)."""

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".flv", ".ogv"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
MEDIA_KINDS = {"video": VIDEO_EXTENSIONS, "image": IMAGE_EXTENSIONS}
