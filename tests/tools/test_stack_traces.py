"""Stack traces of each runtime, as one log event or logged line by line: kept whole, parsed into
frames, and the innermost application frame found."""

from __future__ import annotations

import pytest
from log_samples import CRASHES, Crash, entry

from services.tools.log_compression import LogEntry, compress_logs, merge_continuations
from services.tools.stack_traces import dotnet_source_path, jvm_source_path, parse_trace, top_frame


@pytest.mark.parametrize("crash", CRASHES, ids=[c.language for c in CRASHES])
def test_a_trace_in_one_event_is_kept_whole_and_parsed(crash: Crash) -> None:
    result = compress_logs([entry(crash.text, "ERROR"), entry("GET /healthz 200 1ms")])

    (trace,) = result.stack_traces
    assert trace.text == crash.text
    assert trace.exception == crash.exception
    assert len(trace.frames) == crash.frame_count
    assert {f.language for f in trace.frames} == {crash.language}
    frame = result.top_frame
    assert frame is not None
    assert (frame.file, frame.line, frame.function) == (
        crash.top_file,
        crash.top_line,
        crash.top_function,
    )
    assert result.templates[0].level == "ERROR"
    assert crash.exception.split(":")[0] in result.templates[0].template


@pytest.mark.parametrize("crash", CRASHES, ids=[c.language for c in CRASHES])
def test_a_trace_logged_line_by_line_is_joined_again(crash: Crash) -> None:
    lines = [entry(line, "ERROR", service="api-1") for line in crash.text.split("\n")]
    lines.insert(2, entry("GET /healthz 200 1ms", service="api-2"))  # another replica's line in between

    result = compress_logs(lines)

    (trace,) = result.stack_traces
    assert trace.exception == crash.exception
    assert crash.text.endswith(trace.text.split("\n", 1)[1])  # every line from the exception on
    frame = result.top_frame
    assert frame is not None and (frame.file, frame.line) == (crash.top_file, crash.top_line)


def test_python_frames_carry_their_code_line() -> None:
    (trace,) = compress_logs([entry(CRASHES[0].text, "ERROR")]).stack_traces
    assert trace.frames[-1].code == (
        "return sum(line.price * line.qty for line in order.lines) / order.discount"
    )


def test_dotnet_frames_without_symbols_point_at_the_class_file_of_their_namespace() -> None:
    text = (
        "System.InvalidOperationException: Sequence contains no elements\n"
        "   at System.Linq.ThrowHelper.ThrowNoElementsException()\n"
        "   at Acme.Stock.Picker.Next(Warehouse warehouse)\n"
        "   at Acme.Stock.Api.Reserve(ReserveRequest request)"
    )
    trace = parse_trace(text)
    assert trace is not None
    assert trace.exception == "System.InvalidOperationException: Sequence contains no elements"
    assert [f.function for f in trace.frames] == [
        "Acme.Stock.Api.Reserve",
        "Acme.Stock.Picker.Next",
        "System.Linq.ThrowHelper.ThrowNoElementsException",
    ]
    assert {f.language for f in trace.frames} == {"dotnet"}
    frame = top_frame(compress_logs([entry(text, "ERROR")]).stack_traces)
    # No file and no line without the PDB: the namespace's folders and the class's file instead.
    assert frame is not None and (frame.file, frame.line) == ("", None)
    assert frame.lookup_path == "Acme/Stock/Picker.cs"


def test_chained_python_traceback_reports_the_raised_exception() -> None:
    text = (
        'Traceback (most recent call last):\n  File "/app/db.py", line 9, in get\n    row = rows[0]\n'
        "IndexError: list index out of range\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        'Traceback (most recent call last):\n  File "/app/api.py", line 20, in handler\n    get()\n'
        "LookupError: no row"
    )
    trace = parse_trace(text)
    assert trace is not None
    assert trace.exception == "LookupError: no row"
    assert [f.file for f in trace.frames] == ["/app/api.py"]


def test_java_trace_frames_are_innermost_last_and_top_frame_skips_the_jdk() -> None:
    lines = [
        entry("Request failed", "ERROR", service="orders-1"),
        entry('java.lang.NullPointerException: Cannot invoke "Item.price()"', "ERROR", service="orders-1"),
        entry("\tat java.base/java.util.Objects.requireNonNull(Objects.java:233)", service="orders-1"),
        entry("\tat com.acme.orders.PriceService.total(PriceService.java:42)", service="orders-1"),
        entry("\tat com.acme.orders.OrderController.create(OrderController.java:17)", service="orders-1"),
        entry("Caused by: java.io.IOException: boom", service="orders-1"),
        entry("\tat com.acme.orders.Db.load(Db.java:5)", service="orders-1"),
    ]

    result = compress_logs(lines)

    (trace,) = result.stack_traces
    assert trace.exception == 'java.lang.NullPointerException: Cannot invoke "Item.price()"'
    assert [(f.file, f.line) for f in trace.frames] == [
        ("OrderController.java", 17),
        ("PriceService.java", 42),
        ("Objects.java", 233),
    ]
    assert "Caused by: java.io.IOException: boom" in trace.text
    assert top_frame(result.stack_traces) == result.top_frame
    assert result.top_frame is not None and result.top_frame.for_model() == {
        "file": "PriceService.java",
        "line": 42,
        "function": "com.acme.orders.PriceService.total",
        "code": None,
        "source_path": "com/acme/orders/PriceService.java",  # the package's folders: findable
    }
    assert [f.lookup_path for f in result.code_frames] == [
        "com/acme/orders/PriceService.java",
        "com/acme/orders/OrderController.java",
    ]


def test_node_trace() -> None:
    text = (
        "TypeError: Cannot read properties of undefined (reading 'id')\n"
        "    at getUser (/srv/app/src/users.js:42:13)\n"
        "    at Layer.handle (/srv/app/node_modules/express/lib/router/layer.js:95:5)\n"
        "    at /srv/app/src/server.js:10:3"
    )
    result = compress_logs([entry(text, "ERROR")])
    trace = result.stack_traces[0]
    assert [(f.file, f.line, f.function) for f in trace.frames] == [
        ("/srv/app/src/server.js", 10, "<anonymous>"),
        ("/srv/app/node_modules/express/lib/router/layer.js", 95, "Layer.handle"),
        ("/srv/app/src/users.js", 42, "getUser"),
    ]
    assert top_frame(result.stack_traces) == result.top_frame
    assert result.top_frame is not None and result.top_frame.for_model() == {
        "file": "/srv/app/src/users.js",
        "line": 42,
        "function": "getUser",
        "code": None,
    }


def test_go_panic() -> None:
    text = (
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]\n\n"
        "goroutine 7 [running]:\n"
        "main.(*Store).Get(0x0, {0x6b4ec0, 0x3})\n"
        "\t/src/store/store.go:42 +0x1d\n"
        "main.handler({0x7f1c20, 0xc0000a4000}, 0xc0000b2000)\n"
        "\t/src/main.go:17 +0x85\n"
        "net/http.HandlerFunc.ServeHTTP(0x0?, {0x7f1c20?, 0xc0000a4000?}, 0x0?)\n"
        "\t/usr/local/go/src/net/http/server.go:2122 +0x2f\n"
    )
    result = compress_logs([entry(text, "ERROR")])
    trace = result.stack_traces[0]
    assert trace.exception.startswith("panic: runtime error: invalid memory address")
    assert [(f.file, f.line) for f in trace.frames] == [
        ("/usr/local/go/src/net/http/server.go", 2122),
        ("/src/main.go", 17),
        ("/src/store/store.go", 42),
    ]
    assert top_frame(result.stack_traces) == result.top_frame
    assert result.top_frame is not None and result.top_frame.for_model() == {
        "file": "/src/store/store.go",
        "line": 42,
        "function": "main.(*Store).Get",
        "code": None,
    }


def test_top_frame_is_none_without_application_frames() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/usr/local/lib/python3.11/site-packages/httpx/_client.py", line 1, in send\n    x()\n'
        "httpx.ConnectError: refused"
    )
    assert top_frame(compress_logs([entry(text, "ERROR")]).stack_traces) is None
    assert compress_logs([entry(text, "ERROR")]).top_frame is None
    assert top_frame(compress_logs([]).stack_traces) is None


def test_tracebacks_logged_line_by_line_stay_apart_unless_chained() -> None:
    def crash(error: str) -> list[LogEntry]:
        lines = ["Traceback (most recent call last):", '  File "/app/a.py", line 5, in f', "    g()", error]
        return [entry(text, "ERROR") for text in lines]

    separate = merge_continuations([*crash("KeyError: 'a'"), *crash("KeyError: 'b'")])
    chained = merge_continuations(
        [
            *crash("KeyError: 'a'"),
            entry("During handling of the above exception, another exception occurred:"),
            *crash("RuntimeError: wrapped"),
        ]
    )

    assert len(separate) == 2
    assert len(chained) == 1
    trace = parse_trace(chained[0].message)
    # Raised again in the same function while handling the first: the first says what failed.
    assert trace is not None and trace.exception == "KeyError: 'a'"


@pytest.mark.parametrize(
    ("function", "file", "path"),
    [
        ("com.shop.Cart.total", "Cart.java", "com/shop/Cart.java"),
        ("com.shop.loyalty.Routes$accrual$1.invokeSuspend", "Routes.kt", "com/shop/loyalty/Routes.kt"),
        ("com.shop.UtilsKt.round", "Utils.kt", "com/shop/Utils.kt"),  # top-level Kotlin functions
        ("com.shop.export.Scheduler.lambda$run$0", "Scheduler.java", "com/shop/export/Scheduler.java"),
        ("app//com.shop.Cart.total", "Cart.java", "com/shop/Cart.java"),  # a class loader's prefix
        ("Cart.total", "Cart.java", None),  # the default package: nothing to add
        ("com.shop.Cart.total", "/src/com/shop/Cart.java", None),  # a directory was printed
        ("com.shop.Cart.total", "Native Method", None),
    ],
)
def test_jvm_frames_get_their_package_path(function: str, file: str, path: str | None) -> None:
    assert jvm_source_path(function, file) == path


@pytest.mark.parametrize(
    ("function", "path"),
    [
        ("Shop.Tax.TaxCalculator.Quote", "Shop/Tax/TaxCalculator.cs"),
        ("Shop.Tax.TaxEndpoints.<>c.<Map>b__0_0", "Shop/Tax/TaxEndpoints.cs"),
        ("Shop.Cart.CartService.<GetAsync>d__4.MoveNext", "Shop/Cart/CartService.cs"),
        ("Shop.Orders.Outer+Inner.Run", "Shop/Orders/Outer.cs"),
        ("Shop.Cache.Lru`2.Get", "Shop/Cache/Lru.cs"),
        ("Main", None),
    ],
)
def test_dotnet_frames_without_a_file_get_their_namespace_path(function: str, path: str | None) -> None:
    assert dotnet_source_path(function) == path


# --- held-out forms (issue 12): Rust, PHP, chained Python re-raised in the same function -------


def test_rust_panic_names_its_location_and_message() -> None:
    text = (
        "thread 'tokio-runtime-worker' panicked at src/pricing/discount.rs:22:47:\n"
        "called `Option::unwrap()` on a `None` value\n"
        "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace"
    )
    trace = parse_trace(text)
    assert trace is not None and trace.exception == "called `Option::unwrap()` on a `None` value"
    assert [(f.file, f.line, f.language) for f in trace.frames] == [("src/pricing/discount.rs", 22, "rust")]


def test_rust_backtrace_frames_skip_std_and_crates() -> None:
    text = (
        "thread 'main' panicked at 'index out of bounds: the len is 3 but the index is 3', src/main.rs:9:5\n"
        "stack backtrace:\n"
        "   0: rust_begin_unwind\n"
        "             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/std/src/panicking.rs:645:5\n"
        "   1: shop::split\n"
        "             at ./src/main.rs:9:5\n"
        "   2: shop::main\n"
        "             at ./src/main.rs:3:5"
    )
    trace = parse_trace(text)
    assert trace is not None and trace.exception.startswith("index out of bounds")
    frame = top_frame(compress_logs([entry(text, "ERROR")]).stack_traces)
    assert frame is not None and (frame.file, frame.line, frame.function) == ("src/main.rs", 9, "shop::split")


PHP = (
    "[2026-12-03 07:00:02] production.ERROR: SQLSTATE[40001]: Serialization failure: 1213 Deadlock found "
    'when trying to get lock {"exception":"[object] (Illuminate\\\\Database\\\\QueryException(code: 40001): '
    "SQLSTATE[40001] at /var/www/html/vendor/laravel/framework/src/Illuminate/Database/Connection.php:829)\n"
    "[stacktrace]\n"
    "#0 /var/www/html/vendor/laravel/framework/src/Illuminate/Database/Query/Builder.php(3479): "
    "Illuminate\\\\Database\\\\Connection->update()\n"
    "#1 /var/www/html/app/Services/StockReservation.php(41): "
    "Illuminate\\\\Database\\\\Query\\\\Builder->increment()\n"
    "#2 /var/www/html/app/Http/Controllers/CheckoutController.php(27): "
    "App\\\\Services\\\\StockReservation->reserve()\n"
    "#3 {main}\n"
    '"}'
)


def test_php_trace_names_the_application_frame_and_the_function_running_there() -> None:
    trace = parse_trace(PHP)
    assert trace is not None
    assert trace.exception.startswith("SQLSTATE[40001]: Serialization failure: 1213 Deadlock found")
    assert trace.exception.endswith("(Illuminate\\Database\\QueryException)")
    frame = top_frame(compress_logs([entry(PHP, "ERROR")]).stack_traces)
    # Line 41 calls Builder->increment(); the function running there is the caller's callee.
    assert frame is not None
    assert (frame.file, frame.line) == ("/var/www/html/app/Services/StockReservation.php", 41)
    assert frame.function == "App\\Services\\StockReservation->reserve"


def _python_chain(first: str, second_frames: str, second: str) -> str:
    return (
        f'Traceback (most recent call last):\n  File "/app/promotions/rules.py", line 27, in discount_for\n'
        f'    tier = customer["tier"]\n{first}\n\n'
        "During handling of the above exception, another exception occurred:\n\n"
        f"Traceback (most recent call last):\n{second_frames}{second}"
    )


def test_an_exception_raised_while_handling_one_in_the_same_function_reports_the_first() -> None:
    frames = (
        '  File "/app/promotions/api.py", line 41, in apply\n    amount = discount_for(cart, customer)\n'
        '  File "/app/promotions/rules.py", line 29, in discount_for\n    raise PromotionError("no")\n'
    )
    trace = parse_trace(_python_chain("KeyError: 'tier'", frames, "promotions.errors.PromotionError: no"))
    assert trace is not None and trace.exception == "KeyError: 'tier'"
    assert [(f.file, f.line) for f in trace.frames] == [("/app/promotions/rules.py", 27)]


def test_a_library_wrapper_raised_while_handling_reports_the_applications_exception() -> None:
    frames = (
        '  File "/usr/local/lib/python3.12/site-packages/celery/app/task.py", line 723, in retry\n'
        "    raise self.MaxRetriesExceededError()\n"
    )
    trace = parse_trace(
        _python_chain("KeyError: 'tier'", frames, "celery.exceptions.MaxRetriesExceededError")
    )
    assert trace is not None and trace.exception == "KeyError: 'tier'"


@pytest.mark.parametrize(
    "text",
    [
        # Ruby 3.4, uncaught: the first frame carries the message and the class.
        "app/services/refund_service.rb:27:in 'RefundService#call': undefined method 'amount' for nil "
        "(NoMethodError)\n"
        "\tfrom /usr/local/bundle/gems/actionpack-7.1.3/lib/action_controller/render.rb:6:in 'x'\n"
        "\tfrom app/controllers/refunds_controller.rb:9:in 'RefundsController#create'",
        # Rails' log: the exception, then the application trace.
        "NoMethodError (undefined method `amount' for nil:NilClass):\n  \n"
        "app/services/refund_service.rb:27:in `call'\napp/controllers/refunds_controller.rb:9:in `create'",
    ],
)
def test_ruby_traces_name_the_innermost_application_frame(text: str) -> None:
    trace = parse_trace(text)
    assert trace is not None and trace.exception.startswith("NoMethodError")
    frame = top_frame(compress_logs([entry(text, "ERROR")]).stack_traces)
    assert frame is not None and (frame.file, frame.line) == ("app/services/refund_service.rb", 27)
    assert frame.language == "ruby"
