"""Bundled data: the sample menu."""

from importlib.resources import files

from restobox.menu import Menu


def sample_menu_bytes() -> bytes:
    return files(__name__).joinpath("sample_menu.json").read_bytes()


def load_sample_menu() -> Menu:
    """The bundled sample menu of a Chinese fast-casual restaurant."""
    return Menu.from_json(sample_menu_bytes())
