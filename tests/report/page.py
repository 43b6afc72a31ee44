"""Reading a report page (the HTML file or a browser's dumped DOM) back for the tests."""

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Page:
    sections: set[str] = field(default_factory=set)
    images: list[str] = field(default_factory=list)  # src of every <img>
    loaded: list[str | None] = field(default_factory=list)  # data-loaded of every <img> (set by the page's script)
    summary_rows: list[str] = field(default_factory=list)  # the stage name heading each row of #summary
    body: dict = field(default_factory=dict)  # the <body> attributes


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.page = Page()
        self.in_summary = False
        self.in_row = False
        self.take_name = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.page.sections.add(a.get("id"))
        elif tag == "img":
            self.page.images.append(a.get("src", ""))
            self.page.loaded.append(a.get("data-loaded"))
        elif tag == "body":
            self.page.body = a
        elif tag == "table":
            self.in_summary = a.get("id") == "summary"
        elif tag == "tr" and self.in_summary:
            self.in_row = a.get("class") == "stage"
        elif tag == "th" and self.in_row:
            self.take_name, self.in_row = True, False

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_summary = False

    def handle_data(self, data):
        if self.take_name:
            self.page.summary_rows.append(data)
            self.take_name = False


def parse_page(text: str) -> Page:
    parser = _Parser()
    parser.feed(text)
    return parser.page
