"""The HTTP API: views, their OpenAPI table, serializers, the request pipeline and the error shape."""
