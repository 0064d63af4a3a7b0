"""Getting models in and out: conversion of backbones (and, later, published adapters), model cards, Hub push/pull."""
