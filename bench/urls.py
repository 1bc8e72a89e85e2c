"""The product's URLs plus `/_bench/ceiling/`: a bare Django view returning constant JSON, served by
the same gunicorn processes and middleware as the API, so it measures what the stack costs alone."""

from django.http import JsonResponse
from django.urls import path

from config import urls as product_urls

CONSTANT = {"service": "lending-service", "status": "ok"}


def ceiling(request):
    return JsonResponse(CONSTANT)


urlpatterns = [path("_bench/ceiling/", ceiling), *product_urls.urlpatterns]
handler400 = product_urls.handler400
handler404 = product_urls.handler404
handler500 = product_urls.handler500
