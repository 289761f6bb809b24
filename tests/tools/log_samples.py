"""Log lines as real services write them: an entry builder and one failing request per language,
with the stack trace as that runtime prints it."""

from __future__ import annotations

from dataclasses import dataclass

from services.tools.log_compression import LogEntry


def entry(
    message: str, level: str = "INFO", service: str = "inventory-1", ts: str = "2026-11-24T06:00:00Z"
) -> LogEntry:
    return LogEntry(timestamp=ts, level=level, message=message, service=service)


@dataclass(frozen=True)
class Crash:
    """A failing request's log event: its text, and what a reader must get out of it."""

    language: str
    text: str
    exception: str
    top_file: str
    top_line: int
    top_function: str
    frame_count: int


PYTHON = Crash(
    "python",
    "Exception on /api/v1/orders [POST]\n"
    "Traceback (most recent call last):\n"
    '  File "/usr/local/lib/python3.11/site-packages/flask/app.py", line 1484, in full_dispatch_request\n'
    "    rv = self.dispatch_request()\n"
    '  File "/usr/local/lib/python3.11/site-packages/flask/app.py", line 1469, in dispatch_request\n'
    "    return self.ensure_sync(self.view_functions[rule.endpoint])(**view_args)\n"
    '  File "/srv/orders/views.py", line 31, in create_order\n'
    "    total = pricing.total(order)\n"
    '  File "/srv/orders/pricing.py", line 12, in total\n'
    "    return sum(line.price * line.qty for line in order.lines) / order.discount\n"
    "           ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~^~~~~~~~~~~~~~~~\n"
    "ZeroDivisionError: division by zero",
    "ZeroDivisionError: division by zero",
    "/srv/orders/pricing.py",
    12,
    "total",
    4,
)

JAVA = Crash(
    "java",
    "2026-11-24 06:02:41.389 ERROR 1 --- [nio-8080-exec-7] o.a.c.c.C.[.[.[/].[dispatcherServlet]    : "
    "Servlet.service() for servlet [dispatcherServlet] threw exception\n"
    'java.lang.NullPointerException: Cannot invoke "com.acme.orders.Item.price()" because "item" is null\n'
    "\tat com.acme.orders.PriceService.total(PriceService.java:42)\n"
    "\tat com.acme.orders.OrderController.create(OrderController.java:17)\n"
    "\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke("
    "DirectMethodHandleAccessor.java:103)\n"
    "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883)\n"
    "\tat java.base/java.lang.Thread.run(Thread.java:1583)\n"
    "Caused by: java.io.IOException: price feed closed\n"
    "\tat com.acme.orders.PriceFeed.read(PriceFeed.java:88)\n"
    "\t... 5 more",
    'java.lang.NullPointerException: Cannot invoke "com.acme.orders.Item.price()" because "item" is null',
    "PriceService.java",
    42,
    "com.acme.orders.PriceService.total",
    5,
)

GO = Crash(
    "go",
    "panic: runtime error: index out of range [3] with length 3\n"
    "\n"
    "goroutine 42 [running]:\n"
    "github.com/acme/cart/internal/store.(*Cart).Item(...)\n"
    "\t/build/internal/store/cart.go:58\n"
    "github.com/acme/cart/internal/api.(*Server).getItem("
    "0xc0001a2000, {0x9c3f60, 0xc0002b8000}, 0xc0002c4000)\n"
    "\t/build/internal/api/items.go:27 +0x1f4\n"
    "net/http.HandlerFunc.ServeHTTP(0xc000190000?, {0x9c3f60?, 0xc0002b8000?}, 0xc00018e000?)\n"
    "\t/usr/local/go/src/net/http/server.go:2136 +0x29\n"
    "created by net/http.(*Server).Serve in goroutine 1\n"
    "\t/usr/local/go/src/net/http/server.go:3285 +0x4b4",
    "panic: runtime error: index out of range [3] with length 3",
    "/build/internal/store/cart.go",
    58,
    "github.com/acme/cart/internal/store.(*Cart).Item",
    4,  # the creating call ("created by ...") is the last frame of the goroutine
)

NODE = Crash(
    "node",
    "TypeError: Cannot read properties of undefined (reading 'email')\n"
    "    at sendReceipt (/usr/src/app/src/mailer.js:19:31)\n"
    "    at async Promise.all (index 0)\n"
    "    at async checkout (/usr/src/app/src/routes/checkout.js:44:5)\n"
    "    at Layer.handle [as handle_request] (/usr/src/app/node_modules/express/lib/router/layer.js:95:5)\n"
    "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
    "TypeError: Cannot read properties of undefined (reading 'email')",
    "/usr/src/app/src/mailer.js",
    19,
    "sendReceipt",
    4,
)

DOTNET = Crash(
    "dotnet",
    "fail: Microsoft.AspNetCore.Diagnostics.ExceptionHandlerMiddleware[1]\n"
    "      An unhandled exception has occurred while executing the request.\n"
    "System.InvalidOperationException: Order 8812 could not be priced\n"
    " ---> System.NullReferenceException: Object reference not set to an instance of an object.\n"
    "   at Acme.Orders.PriceService.Total(Order order) in /src/Orders/PriceService.cs:line 42\n"
    "   at Acme.Orders.OrderService.PriceAsync(Order order) in /src/Orders/OrderService.cs:line 88\n"
    "   --- End of inner exception stack trace ---\n"
    "   at Acme.Orders.OrderService.PriceAsync(Order order) in /src/Orders/OrderService.cs:line 95\n"
    "   at Acme.Orders.OrdersController.Create(CreateOrder request) in "
    "/src/Orders/OrdersController.cs:line 31\n"
    "--- End of stack trace from previous location ---\n"
    "   at Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor.Execute(ActionContext context)",
    "System.NullReferenceException: Object reference not set to an instance of an object.",
    "/src/Orders/PriceService.cs",
    42,
    "Acme.Orders.PriceService.Total",
    2,
)

CRASHES = (PYTHON, JAVA, GO, NODE, DOTNET)
