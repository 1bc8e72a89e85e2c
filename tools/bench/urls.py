"""The product's URLs plus a Django view returning constant JSON, at two paths: `/_bench/ceiling/`
through the full middleware like the API, and `/_bench/bare/`, which `tools.bench.wsgi` serves without any
middleware. Same server processes for both, so they measure what the stack costs alone."""

from django.http import JsonResponse
from django.urls import path

from config import urls as product_urls

CONSTANT = {"service": "lending-service", "status": "ok"}


def ceiling(request):
    return JsonResponse(CONSTANT)


urlpatterns = [
    path("_bench/ceiling/", ceiling),
    path("_bench/bare/", ceiling),
    path("_bench/all-middleware/", ceiling),
    *product_urls.urlpatterns,
]
handler400 = product_urls.handler400
handler404 = product_urls.handler404
handler500 = product_urls.handler500
