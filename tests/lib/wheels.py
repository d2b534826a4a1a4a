"""Tiny archives for import and package tests: zip files and pure-Python wheels built in memory."""
import io
import zipfile


def zip_bytes(files):
    """A zip archive of {path: text} as bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return buf.getvalue()


def wheel(name, version, module_text):
    """A py3-none-any wheel whose package `name` is module_text, as bytes."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": module_text,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    files[f"{dist}/RECORD"] = "".join(f"{p},,\n" for p in files) + f"{dist}/RECORD,,\n"
    return zip_bytes(files)


def tiny_index():
    """A simple-API package index serving tinypkg 1.0 ({path: body})."""
    return {
        "/simple/tinypkg/": b'<html><body><a href="/files/tinypkg-1.0-py3-none-any.whl">'
                            b"tinypkg-1.0-py3-none-any.whl</a></body></html>",
        "/files/tinypkg-1.0-py3-none-any.whl": wheel("tinypkg", "1.0", "VALUE = 'tiny'\n"),
    }
